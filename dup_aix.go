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
	// F_SETFD on a descriptor just made cannot fail; were it to, the copy
	// is kept all the same: closing a descriptor of a locked file would
	// drop this process's record lock on it.
	unix.FcntlInt(uintptr(dup), unix.F_SETFD, unix.FD_CLOEXEC)
	return dup, nil
}
