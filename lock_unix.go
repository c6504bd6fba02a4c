//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package lockfile

import (
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// A sysFile is a raw descriptor rather than an *os.File: on Linux, os.OpenFile
// spends a system call offering every regular file to the network poller,
// and an *os.File's cleanup would close the descriptor, and so release the
// lock, whenever the garbage collector found the lock unreachable.
type sysFile struct{ fd int }

// openFile opens path with flag. Unless followSymlinks is set, O_NOFOLLOW
// makes the open fail if the last element is a symbolic link; the errno for
// that differs between systems (ELOOP, EMLINK, EFTYPE), so the path is
// looked at again to report it the same way everywhere. A missing file
// (ENOENT) or one that O_EXCL found (EEXIST) is never a link refused by
// O_NOFOLLOW, so creating a lock file costs no extra look.
func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (sysFile, error) {
	flag |= unix.O_CLOEXEC
	if !followSymlinks {
		flag |= unix.O_NOFOLLOW
	}
	if flag&(unix.O_WRONLY|unix.O_RDWR) == 0 {
		flag |= unix.O_NONBLOCK // else Holder's open of a named pipe waits for a writer
	}
	for {
		fd, err := sysOpen(path, flag, uint32(perm))
		switch {
		case err == nil:
			return sysFile{fd}, nil
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

// tryLock takes flock(2)'s exclusive lock without waiting. flock locks
// belong to the open file description, so a second open of the same file in
// this process is refused too, and a child process, which inherits no
// descriptor (O_CLOEXEC), cannot keep the lock alive.
func (f sysFile) tryLock() error { return f.flock(unix.LOCK_EX | unix.LOCK_NB) }

// tryLockShared takes the shared lock without waiting, to learn whether
// anyone holds the exclusive one.
func (f sysFile) tryLockShared() error { return f.flock(unix.LOCK_SH | unix.LOCK_NB) }

// waitLock takes the exclusive lock, blocking in the kernel until it is free.
func (f sysFile) waitLock() error { return f.flock(unix.LOCK_EX) }

// unlock drops a lock that is to be given up while the file stays open.
func (f sysFile) unlock() error { return f.flock(unix.LOCK_UN) }

func (f sysFile) flock(how int) error {
	err := unix.Flock(f.fd, how)
	for err == unix.EINTR {
		err = unix.Flock(f.fd, how)
	}
	switch {
	case err == nil:
		return nil
	case err == unix.EWOULDBLOCK:
		return ErrLocked
	case err == unix.ENOLCK || err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.ENOSYS:
		// NFS without a lock manager, and some FUSE and SMB mounts.
		return fmt.Errorf("%w by this file system (flock: %w)", ErrUnsupported, err)
	}
	return fmt.Errorf("flock: %w", err)
}

func (f sysFile) close() error {
	if err := unix.Close(f.fd); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

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
// callers that need one. Closing it leaves the lock held: the lock goes
// with the open file description, which the duplicate shares.
func (f sysFile) osFile(name string) (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(f.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// A fileStat is what this package needs to know of a file: its type, its
// size, which file it is and whether it still has a name.
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
	return fileStat{mode: uint32(st.Mode), size: st.Size, nlink: uint64(st.Nlink), dev: uint64(st.Dev), ino: uint64(st.Ino)}
}

func (s fileStat) regular() bool                { return s.mode&unix.S_IFMT == unix.S_IFREG }
func (s fileStat) sameFile(other fileStat) bool { return s.dev == other.dev && s.ino == other.ino }
func (s fileStat) removed() bool                { return s.nlink == 0 }
