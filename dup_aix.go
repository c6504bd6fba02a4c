package lockfile

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// dupCloexec duplicates fd, close-on-exec. AIX has no F_DUPFD_CLOEXEC; the
// fork lock keeps a child started in between from inheriting the copy.
func dupCloexec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 0)
	if err != nil {
		return -1, err
	}
	if _, err := unix.FcntlInt(uintptr(dup), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		unix.Close(dup)
		return -1, err
	}
	return dup, nil
}
