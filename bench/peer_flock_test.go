//go:build (linux && !lockfile_fcntl) || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package bench

import "golang.org/x/sys/unix"

// peerLock takes the lock the library takes in this build: flock(2).
func peerLock(fd int, wait bool) error {
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		if err := unix.Flock(fd, how); err != unix.EINTR {
			return err
		}
	}
}

func peerUnlock(fd int) error { return unix.Flock(fd, unix.LOCK_UN) }
