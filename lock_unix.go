//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openFile opens path with flag. Unless followSymlinks is set, O_NOFOLLOW
// makes the open fail if the last element is a symbolic link; the errno for
// that differs between systems (ELOOP, EMLINK, EFTYPE), so the path is
// looked at again to report it the same way everywhere. A missing file
// (ENOENT) or one that O_EXCL found (EEXIST) is never a link refused by
// O_NOFOLLOW, so creating a lock file costs no extra look.
func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (*os.File, error) {
	if !followSymlinks {
		flag |= unix.O_NOFOLLOW
	}
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		flag |= unix.O_NONBLOCK // else Holder's open of a FIFO waits for a writer
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil && !followSymlinks && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
		if linkErr := refuseSymlink(path); linkErr != nil {
			return nil, linkErr
		}
	}
	return f, err
}

// tryLock takes flock(2)'s exclusive lock without waiting. flock locks
// belong to the open file description, so a second open of the same file in
// this process is refused too, and a child process, which inherits no
// descriptor (Go opens with O_CLOEXEC), cannot keep the lock alive.
func tryLock(f *os.File) error {
	return flock(f, unix.LOCK_EX|unix.LOCK_NB)
}

// tryLockShared takes flock(2)'s shared lock without waiting, to learn
// whether anyone holds the exclusive one.
func tryLockShared(f *os.File) error {
	return flock(f, unix.LOCK_SH|unix.LOCK_NB)
}

// waitLock takes the exclusive lock, blocking in the kernel until it is free.
func waitLock(f *os.File) error {
	return flock(f, unix.LOCK_EX)
}

func unlock(f *os.File) error {
	return flock(f, unix.LOCK_UN)
}

func flock(f *os.File, how int) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lockErr error
	err = conn.Control(func(fd uintptr) {
		for {
			lockErr = unix.Flock(int(fd), how)
			if lockErr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	switch {
	case lockErr == nil:
		return nil
	case errors.Is(lockErr, unix.EWOULDBLOCK):
		return ErrLocked
	case errors.Is(lockErr, unix.ENOLCK), errors.Is(lockErr, unix.ENOTSUP),
		errors.Is(lockErr, unix.EOPNOTSUPP), errors.Is(lockErr, unix.ENOSYS):
		// NFS without a lock manager, and some FUSE and SMB mounts.
		return fmt.Errorf("%w by this file system (flock: %w)", ErrUnsupported, lockErr)
	}
	return fmt.Errorf("flock: %w", lockErr)
}
