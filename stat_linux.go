package lockfile

import (
	"os"
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

// kernelInterface reports a file of a file system whose files are the
// kernel's interfaces, such as procfs or sysfs, where a write is an order to
// the kernel. Those files report a size of 0 or of one page whatever they
// hold, and a lock file holding content has neither, so only such a file is
// asked about: a new, empty lock file costs one fstatfs(2), once. If the
// call fails, the file is taken for an ordinary one.
func (f sysFile) kernelInterface(st fileStat) bool {
	if st.size != 0 && st.size != int64(os.Getpagesize()) {
		return false
	}
	var fs unix.Statfs_t
	err := unix.Fstatfs(f.fd, &fs)
	for err == unix.EINTR {
		err = unix.Fstatfs(f.fd, &fs)
	}
	if err != nil {
		return false
	}
	switch uint32(fs.Type) {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC,
		unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC, unix.SECURITYFS_MAGIC, unix.SELINUX_MAGIC,
		unix.SMACK_MAGIC, unix.BINFMTFS_MAGIC, configfsMagic:
		return true
	}
	return false
}

// configfsMagic is configfs's f_type, which golang.org/x/sys does not name.
const configfsMagic = 0x62656570
