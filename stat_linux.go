package lockfile

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstat asks statx(2) for the type, size, link count and identity only. A plain fstat
// also reads the change time, and on Linux 6.13 and later, a file whose
// change time has been read gets a fine-grained one at its next write:
// the content write that follows would then update the inode in the
// file system's journal, which costs more than the rest of the cycle.
func fstat(fd int) (fileStat, error) {
	var (
		stx   unix.Statx_t
		empty [1]byte // unix.Statx would allocate to pass ""
		err   error
	)
	_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(fd), uintptr(unsafe.Pointer(&empty[0])),
		unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_TYPE|unix.STATX_SIZE|unix.STATX_INO|unix.STATX_NLINK,
		uintptr(unsafe.Pointer(&stx)), 0)
	if errno != 0 {
		err = errno
	}
	// Before Linux 4.11 there is no statx, and some container sandboxes
	// refuse a call they do not know.
	if err == unix.ENOSYS || err == unix.EPERM {
		return fstatPlain(fd)
	}
	if err != nil {
		return fileStat{}, err
	}
	return fileStat{
		mode:  uint32(stx.Mode),
		size:  int64(stx.Size),
		nlink: uint64(stx.Nlink),
		dev:   unix.Mkdev(stx.Dev_major, stx.Dev_minor),
		ino:   stx.Ino,
	}, nil
}
