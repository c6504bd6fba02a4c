//go:build !aix && !(solaris && !illumos) && !(linux && lockfile_fcntl)

package lockfile

import "os"

// Where locks belong to the open file (flock(2), LockFileEx), the kernel
// keeps lock objects apart and a process needs no table of its own locks:
// lock_fcntl.go has one for systems whose locks belong to the process.

// heldHere reports a lock of this process's that the kernel would not
// refuse to another lock object: here there is none.
func heldHere(path string, followSymlinks bool) (string, lockState) {
	return "", free
}

// joinHere joins a shared lock of this process's without opening the file,
// where the kernel cannot tell lock objects apart: here each lock object
// opens its own.
func joinHere(path string, followSymlinks bool, m lockMode) (sysFile, bool) {
	return sysFile{}, false
}

// lendFile runs fn with an *os.File of its own on the locked file, a
// duplicate closed when fn returns: the lock stays with f, so fn cannot
// close it, and closing its own releases nothing.
func (f sysFile) lendFile(fn func(*os.File) error) error {
	file, err := f.osFile()
	if err != nil {
		return err
	}
	defer file.Close()
	return fn(file)
}

// knownLost reports whether the package found f's lock lost: where the
// kernel keeps lock objects apart, it never does.
func (sysFile) knownLost() bool { return false }
