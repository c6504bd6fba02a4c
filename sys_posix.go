//go:build unix && !linux

package lockfile

import "golang.org/x/sys/unix"

func fstat(fd int) (fileStat, error) { return fstatPlain(fd) }

func statPath(path string, followSymlinks bool) (fileStat, error) {
	return statPathPlain(path, followSymlinks)
}

func sysOpenat(dirfd int, path string, flag int, perm uint32) (int, error) {
	return unix.Openat(dirfd, path, flag, perm)
}

// openDir opens a directory to open names in, for searching only where the
// system has O_SEARCH, so that it needs no permission to read it.
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, oSearch|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func dirStat(fd int) (dirInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return dirInfo{}, err
	}
	return dirInfo{mode: uint32(st.Mode), uid: st.Uid, gid: st.Gid}, nil
}

// kernelInterface reports a file of procfs, sysfs and the like, which are
// Linux's; elsewhere there are none to refuse.
func (sysFile) kernelInterface(fileStat) bool { return false }
