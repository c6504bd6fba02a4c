package lockfile

import (
	"io/fs"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstat asks statx(2) for the type, size, link count and identity only. A plain fstat
// also reads the change time, and on Linux 6.13 and later, a file whose
// change time has been read gets a fine-grained one at its next write:
// the content write that follows would then update the inode in the
// file system's journal, which costs more than the rest of the cycle.
func fstat(fd int) (fileStat, error) {
	var empty [1]byte // unix.Statx would allocate to pass ""
	st, err := statx(fd, &empty[0], unix.AT_EMPTY_PATH)
	// Before Linux 4.11 there is no statx, and some container sandboxes
	// refuse a call they do not know.
	if err == unix.ENOSYS || err == unix.EPERM {
		return fstatPlain(fd)
	}
	return st, err
}

// statPath describes the file at path, or the link there unless
// followSymlinks is set, with statx(2) as fstat does.
func statPath(path string, followSymlinks bool) (fileStat, error) {
	var name cPath
	p := name.ptr(path)
	if p == nil {
		return statPathPlain(path, followSymlinks)
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if followSymlinks {
		flags = 0
	}
	st, err := statx(unix.AT_FDCWD, p, flags)
	switch {
	case err == unix.ENOSYS || err == unix.EPERM:
		return statPathPlain(path, followSymlinks)
	case err != nil:
		return fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return st, nil
}

// dirStat describes the directory open as fd, with statx(2), which takes
// an O_PATH descriptor.
func dirStat(fd int) (dirInfo, error) {
	var (
		empty [1]byte
		stx   unix.Statx_t
	)
	_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(fd), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT),
		unix.STATX_MODE|unix.STATX_UID|unix.STATX_GID,
		uintptr(unsafe.Pointer(&stx)), 0)
	switch {
	case errno == unix.ENOSYS || errno == unix.EPERM:
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return dirInfo{}, err
		}
		return dirInfo{mode: st.Mode, uid: st.Uid, gid: st.Gid}, nil
	case errno != 0:
		return dirInfo{}, errno
	}
	return dirInfo{mode: uint32(stx.Mode), uid: stx.Uid, gid: stx.Gid}, nil
}

// statx asks statx(2) about path, a NUL-terminated name, relative to dirfd.
func statx(dirfd int, path *byte, flags int) (fileStat, error) {
	var stx unix.Statx_t
	_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(path)),
		uintptr(flags|unix.AT_STATX_SYNC_AS_STAT),
		unix.STATX_TYPE|unix.STATX_SIZE|unix.STATX_INO|unix.STATX_NLINK,
		uintptr(unsafe.Pointer(&stx)), 0)
	if errno != 0 {
		return fileStat{}, errno
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
