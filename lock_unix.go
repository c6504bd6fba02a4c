//go:build unix

package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A sysFile is a raw descriptor rather than an *os.File: on Linux, os.OpenFile
// spends a system call offering every regular file to the network poller,
// and an *os.File's cleanup would close the descriptor, and so release the
// lock, whenever the garbage collector found the lock unreachable. The lock
// calls on it are in lock_flock.go or lock_fcntl.go.
type sysFile struct {
	fd   int
	name string // the path as given, as os.File.Name returns it
}

// openFile opens path with flag. Unless followSymlinks is set, O_NOFOLLOW
// makes the open fail if the last element is a symbolic link; the errno for
// that differs between systems (ELOOP, EMLINK, EFTYPE), so the path is
// looked at again to report it the same way everywhere. A missing file
// (ENOENT) or one that O_EXCL found (EEXIST) is never a link refused by
// O_NOFOLLOW, so creating a lock file costs no extra look.
func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (sysFile, error) {
	return currentDir().open(path, path, flag, perm, followSymlinks)
}

// A dirFile is a directory that names are opened in.
type dirFile struct{ fd int }

func currentDir() dirFile { return dirFile{unix.AT_FDCWD} }

// open opens name in d as openFile opens path, which is how errors name it.
// In a directory that openTrustedDir opened, a symbolic link is never
// followed: openTrustedDir followed the links the caller allows already,
// and one that appears since may lead out of the directory it checked.
func (d dirFile) open(name, path string, flag int, perm fs.FileMode,
	followSymlinks bool) (sysFile, error) {
	flag |= unix.O_CLOEXEC
	if !followSymlinks || d.fd != unix.AT_FDCWD {
		flag |= unix.O_NOFOLLOW
	}
	if flag&(unix.O_WRONLY|unix.O_RDWR) == 0 {
		flag |= unix.O_NONBLOCK // else Holder's open of a named pipe waits for a writer
	}
	for {
		fd, err := sysOpenat(d.fd, name, flag, uint32(perm))
		switch {
		case err == nil:
			return sysFile{fd, path}, nil
		case err == unix.EINTR:
			continue
		case !followSymlinks && err != unix.ENOENT && err != unix.EEXIST:
			if linkErr := refuseSymlink(path); linkErr != nil {
				return sysFile{}, linkErr
			}
		}
		return sysFile{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}

func (d dirFile) close() error {
	if d.fd == unix.AT_FDCWD {
		return nil
	}
	return closeFD(d.fd)
}

// openTrustedDir opens the directory of path, and returns it with the name
// of path's last element in it, if no user but the caller and root can add
// names to the directory and remove them again: it is owned by the caller
// or root, and writable by no one else, or sticky. Elsewhere another user
// could link a file of someone else's to the path and remove the link
// again between the lock file's open and any look at it; there the error
// is ErrHardLink. With followSymlinks, the links at the last element are
// followed first, and the directory checked is the one they lead to. A
// path whose last element cannot name a file (empty, . or ..) is left to
// openFile, in the current directory.
func openTrustedDir(path string, followSymlinks bool) (dirFile, string, error) {
	target := path
	if followSymlinks {
		var err error
		if target, err = resolveLast(path); err != nil {
			return dirFile{}, "", &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
	dir, name := "", target
	if i := strings.LastIndexByte(target, '/'); i >= 0 {
		dir, name = target[:i+1], target[i+1:]
	}
	if name == "" || name == "." || name == ".." {
		return currentDir(), path, nil
	}
	if dir == "" {
		dir = "."
	}
	fd, err := openDir(dir)
	if err != nil {
		return dirFile{}, "", &fs.PathError{Op: "open", Path: path, Err: err}
	}
	st, err := dirStat(fd)
	if err != nil {
		closeFD(fd)
		return dirFile{}, "", &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if !st.trusted() {
		closeFD(fd)
		return dirFile{}, "", &fs.PathError{Op: "open", Path: path, Err: ErrHardLink}
	}
	return dirFile{fd}, name, nil
}

// A dirInfo is what openTrustedDir needs to know of a directory.
type dirInfo struct {
	mode     uint32
	uid, gid uint32
}

// trusted reports a directory owned by the caller or root that no one
// else may write, as far as its mode says (ACLs are not read), or that is
// sticky: there only a file's owner, the directory's and root remove names.
func (d dirInfo) trusted() bool {
	if uid := uint32(unix.Geteuid()); d.uid != uid && d.uid != 0 {
		return false
	}
	return d.mode&unix.S_ISVTX != 0 || d.mode&0o022 == 0
}

// maxLinks bounds the symbolic links resolveLast follows, as the kernel's
// own limit (40 on Linux) bounds a lookup's.
const maxLinks = 40

// resolveLast follows the symbolic links at the last element of path, and
// returns the path of what they lead to, which need not exist. A link that
// leads to a file its text does not name, as /proc/self/fd/N of a removed
// file does, is refused with errNoName.
func resolveLast(path string) (string, error) {
	given := path
	for range maxLinks {
		target, err := os.Readlink(path)
		switch {
		case errors.Is(err, unix.EINVAL), errors.Is(err, fs.ErrNotExist):
			if path != given && !sameTarget(given, path) {
				return "", errNoName
			}
			return path, nil // not a link, or nothing there yet
		case err != nil:
			return "", err
		case !filepath.IsAbs(target):
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	return "", unix.ELOOP
}

// sameTarget reports whether the file that link leads to is the one at
// target, or neither exists.
func sameTarget(link, target string) bool {
	linked, err := statPath(link, true)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	found, err := statPath(target, false)
	return err == nil && found.sameFile(linked)
}

// errNoName reports a symbolic link whose text names no file it leads to.
var errNoName = fmt.Errorf("the link leads to a file with no name to open: %w", fs.ErrNotExist)

// closeFD closes a descriptor.
func closeFD(fd int) error { return unix.Close(fd) }

func (f sysFile) readAt(b []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(f.fd, b, off)
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

func (f sysFile) writeAt(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (f sysFile) truncate(size int64) error {
	for {
		if err := unix.Ftruncate(f.fd, size); err != unix.EINTR {
			return err
		}
	}
}

// osFile returns a new *os.File on a duplicate of the descriptor, for
// callers that need one.
func (f sysFile) osFile() (*os.File, error) {
	fd, err := dupCloexec(f.fd)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	return os.NewFile(uintptr(fd), f.name), nil
}

// A fileStat is what this package needs to know of a file: its type, its
// size, which file it is and how many names it has.
type fileStat struct {
	mode     uint32
	size     int64
	nlink    uint64
	dev, ino uint64
}

func (f sysFile) stat() (fileStat, error) { return fstat(f.fd) }

// fstatPlain is fstat(2), for systems without statx.
func fstatPlain(fd int) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileStat{}, err
	}
	return newFileStat(&st), nil
}

// statPathPlain describes the file at path, or the link there unless
// followSymlinks is set, with stat(2) or lstat(2).
func statPathPlain(path string, followSymlinks bool) (fileStat, error) {
	var (
		st  unix.Stat_t // called directly, not through a func value, it stays on the stack
		err error
	)
	if followSymlinks {
		err = unix.Stat(path, &st)
	} else {
		err = unix.Lstat(path, &st)
	}
	if err != nil {
		return fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return newFileStat(&st), nil
}

func newFileStat(st *unix.Stat_t) fileStat {
	return fileStat{mode: uint32(st.Mode), size: st.Size, nlink: uint64(st.Nlink),
		dev: uint64(st.Dev), ino: uint64(st.Ino)}
}

func (s fileStat) regular() bool                { return s.mode&unix.S_IFMT == unix.S_IFREG }
func (s fileStat) sameFile(other fileStat) bool { return s.dev == other.dev && s.ino == other.ino }
func (s fileStat) removed() bool                { return s.nlink == 0 }
func (s fileStat) linked() bool                 { return s.nlink > 1 }

func (f sysFile) handle() uintptr { return uintptr(f.fd) }
