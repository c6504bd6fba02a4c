package lockfile

// The platform layer. lock_flock.go, lock_fcntl.go, lock_windows.go and
// lock_other.go, each with the files beside it (lock_unix.go, sys_*.go,
// dup_*.go, table_none.go), supply the same primitives, and import nothing
// from the files above them:
//
//	sysFile                       an open lock file: a descriptor or handle
//	fileStat                      what is known of a file: regular, removed,
//	                              linked (a second name), sameFile
//	dirFile                       a directory that names are opened in
//	openFile(path, flag, perm, followSymlinks) (sysFile, error)
//	currentDir() dirFile
//	openTrustedDir(path, followSymlinks) (dirFile, name, error)  or ErrHardLink
//	dirFile.open(name, path, flag, perm, followSymlinks) (sysFile, error)
//	dirFile.close() error
//	statPath(path, followSymlinks) (fileStat, error)
//	sysFile.tryLock(lockMode) error       ErrLocked if held elsewhere
//	sysFile.waitLock(lockMode) error      blocks until held
//	sysFile.testLock() (lockState, error) as another lock object sees it
//	sysFile.detach() bool                 let a blocked waitLock's lock go
//	sysFile.unlockAndClose() (unlockErr, closeErr error)
//	sysFile.close() error                 of a file this lock does not hold
//	sysFile.readAt, writeAt, truncate, stat, handle
//	sysFile.kernelInterface(fileStat) bool  procfs and the like
//	sysFile.osFile() (*os.File, error)    a duplicate
//	sysFile.lendFile(fn) error            runs a hook on the locked file
//	heldHere(path, followSymlinks) (holder, lockState)
//	                              a lock of this process's that the kernel
//	                              would not refuse to another lock object
//	joinHere(path, followSymlinks, lockMode) (sysFile, bool)
//	                              joins such a shared lock

import (
	"errors"
	"io/fs"
	"os"
)

// errUnsupported reports that the lock cannot be taken here at all: the
// platform has no file locking that excludes other processes, or the file
// system refuses to lock.
// errors.Is(errUnsupported, errors.ErrUnsupported) holds.
var errUnsupported error = unsupported{}

type unsupported struct{}

func (unsupported) Error() string        { return "file locking is not supported" }
func (unsupported) Is(target error) bool { return target == errors.ErrUnsupported }

// lockMode is the kind of lock a caller asks for.
type lockMode int

const (
	exclusive lockMode = iota
	shared
)

// lockState is what testLock and heldHere learn of a lock held by someone
// else.
type lockState int

const (
	free lockState = iota
	heldShared
	heldExclusive
)

// excludes reports whether a lock held as s refuses a lock of mode m.
func (s lockState) excludes(m lockMode) bool {
	return s == heldExclusive || s == heldShared && m == exclusive
}

// refuseSymlink returns an ErrSymlink error if the last element of path is
// a symbolic link, and nil otherwise.
func refuseSymlink(path string) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return nil
}
