//go:build windows

package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// openFile opens path with flag. Windows has no O_NOFOLLOW, so a link is
// looked for before the open. That leaves a moment in which a link could
// appear, but creating one needs a privilege on Windows, so a planted link
// is not the threat it is in a shared Unix directory; the check keeps the
// behaviour, and Acquire's check of the path (which does not follow a link
// unless asked to), the same as on Unix.
func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (*os.File, error) {
	if !followSymlinks {
		if err := refuseSymlink(path); err != nil {
			return nil, err
		}
	}
	return os.OpenFile(path, flag, perm)
}

// The lock covers byte 0 and nothing else, the byte zc.lockfile's
// msvcrt.locking call locks, so both exclude each other. It is held by the
// handle: another handle, in this process or another, is refused.
const (
	lockOffset = 0
	lockLength = 1
)

// tryLock takes the exclusive byte-range lock without waiting.
func tryLock(f *os.File) error {
	return lockFileEx(f, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY)
}

// tryLockShared takes a shared lock on the same byte without waiting, to
// learn whether anyone holds the exclusive one.
func tryLockShared(f *os.File) error {
	return lockFileEx(f, windows.LOCKFILE_FAIL_IMMEDIATELY)
}

// waitLock takes the exclusive lock, blocking in the kernel until it is free.
// Go opens files for synchronous I/O, so LockFileEx returns only once the
// lock is held.
func waitLock(f *os.File) error {
	return lockFileEx(f, windows.LOCKFILE_EXCLUSIVE_LOCK)
}

func unlock(f *os.File) error {
	return onHandle(f, func(h windows.Handle) error {
		return windows.UnlockFileEx(h, 0, lockLength, 0, &windows.Overlapped{Offset: lockOffset})
	})
}

func lockFileEx(f *os.File, flags uint32) error {
	err := onHandle(f, func(h windows.Handle) error {
		return windows.LockFileEx(h, flags, 0, lockLength, 0, &windows.Overlapped{Offset: lockOffset})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return ErrLocked
	case errors.Is(err, windows.ERROR_NOT_SUPPORTED), errors.Is(err, windows.ERROR_INVALID_FUNCTION):
		// Some network redirectors and FUSE-like drivers.
		return fmt.Errorf("%w by this file system (LockFileEx: %w)", ErrUnsupported, err)
	}
	return fmt.Errorf("LockFileEx: %w", err)
}

func onHandle(f *os.File, op func(windows.Handle) error) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := conn.Control(func(fd uintptr) { opErr = op(windows.Handle(fd)) }); err != nil {
		return err
	}
	return opErr
}
