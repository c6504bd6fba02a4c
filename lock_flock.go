//go:build darwin || dragonfly || freebsd || illumos || netbsd || openbsd || (linux && !lockfile_fcntl)

package lockfile

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// flock(2) locks belong to the open file description: a second open of the
// same file, in this process or another, is refused, closing one
// descriptor leaves the others' locks alone, and a child process, which
// inherits no descriptor (O_CLOEXEC), cannot keep the lock alive. The
// kernel keeps lock objects apart, so this file needs no table of its own.

// tryLock takes the lock without waiting.
func (f sysFile) tryLock(m lockMode) error { return f.flock(flockHow[m] | unix.LOCK_NB) }

// waitLock takes the lock, blocking in the kernel until it is free.
func (f sysFile) waitLock(m lockMode) error { return f.flock(flockHow[m]) }

var flockHow = [...]int{exclusive: unix.LOCK_EX, shared: unix.LOCK_SH}

// detach puts a new pipe in the place of f's descriptor, in one step, for
// a waitLock that another thread may be blocked in. That call then holds
// the last reference to the lock file's open file description, so the lock
// it takes when the holder lets go is dropped by the kernel as the call
// returns. The descriptor stays open until f is closed, so its number
// cannot name another file meanwhile, and a flock on the pipe, if the call
// has not begun, returns at once. It reports whether the swap was made.
func (f sysFile) detach() bool {
	if runtime.GOOS != "linux" {
		// Tested on Linux only; XNU's dup2 may wait for a blocked flock
		// on the descriptor it replaces.
		return false
	}
	// A child forked between the pipe and the close-on-exec flags would
	// inherit the pipe's descriptors.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		return false
	}
	defer unix.Close(p[1])
	defer unix.Close(p[0])
	if err := unix.Dup2(p[0], f.fd); err != nil {
		return false
	}
	unix.CloseOnExec(f.fd)
	return true
}

// unlock drops the lock while the file stays open.
func (f sysFile) unlock() error { return f.flock(unix.LOCK_UN) }

// unlockAndClose releases the lock held through f and closes it. Closing
// alone would release the lock only once every copy of the descriptor is
// gone, and a child that os/exec is starting holds one until its exec is
// done, after the parent has resumed. Unlocking first releases it at once.
func (f sysFile) unlockAndClose() (unlockErr, closeErr error) {
	return f.unlock(), closeFD(f.fd)
}

// close closes the descriptor.
func (f sysFile) close() error { return closeFD(f.fd) }

// testLock tells whether someone else holds a lock on the file, taking a
// lock for a moment to find out: flock(2) has no call that only asks.
func (f sysFile) testLock() (lockState, error) {
	switch err := f.flock(unix.LOCK_SH | unix.LOCK_NB); {
	case err == ErrLocked:
		return heldExclusive, nil
	case err != nil:
		return free, err
	}
	// Converting to an exclusive lock fails while others share the lock.
	state := free
	switch err := f.flock(unix.LOCK_EX | unix.LOCK_NB); {
	case err == ErrLocked:
		state = heldShared
	case errors.Is(err, unix.EBADF):
		// NFSv4 refuses an exclusive lock through a descriptor open for
		// reading only: all that is known is that no one holds it
		// exclusively.
	case err != nil:
		f.unlock()
		return free, err
	}
	return state, f.unlock()
}

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
		return fmt.Errorf("%w by this file system (flock: %w)", errUnsupported, err)
	}
	return fmt.Errorf("flock: %w", err)
}
