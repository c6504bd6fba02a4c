package lockfile

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A cPath holds a path for a system call, NUL-terminated, on the stack.
// golang.org/x/sys/unix would copy it to the heap: an allocation that costs
// the bare cycle 1%, and a process just woken from a wait more than the
// call itself (see bench/README.md).
type cPath [256]byte

// ptr copies path into p, which must be zero, and returns a pointer to it,
// or nil if path does not fit or holds a NUL byte: such a path is passed
// the usual way.
func (p *cPath) ptr(path string) *byte {
	if len(path) >= len(p) || strings.IndexByte(path, 0) >= 0 {
		return nil
	}
	copy(p[:], path)
	return &p[0]
}

// sysOpenat is unix.Openat, which it calls for a path that does not fit a
// cPath.
func sysOpenat(dirfd int, path string, flag int, perm uint32) (int, error) {
	var name cPath
	p := name.ptr(path)
	if p == nil {
		return unix.Openat(dirfd, path, flag, perm)
	}
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(flag|unix.O_LARGEFILE), uintptr(perm), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// openDir opens a directory for use as a directory descriptor only
// (O_PATH), which needs no permission to read it.
func openDir(path string) (int, error) {
	for {
		fd, err := sysOpenat(unix.AT_FDCWD, path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
