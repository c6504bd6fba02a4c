//go:build linux && lockfile_fcntl

package bench

import (
	"io"

	"golang.org/x/sys/unix"
)

// peerLock takes the lock the library takes in this build: a POSIX record
// lock on the whole file.
func peerLock(fd int, wait bool) error {
	cmd := unix.F_SETLK
	if wait {
		cmd = unix.F_SETLKW
	}
	return peerFcntl(fd, cmd, unix.F_WRLCK)
}

func peerUnlock(fd int) error { return peerFcntl(fd, unix.F_SETLK, unix.F_UNLCK) }

func peerFcntl(fd, cmd int, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		if err := unix.FcntlFlock(uintptr(fd), cmd, &lk); err != unix.EINTR {
			return err
		}
	}
}
