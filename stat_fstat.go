//go:build unix && !linux

package lockfile

import "golang.org/x/sys/unix"

func fstat(fd int) (fileStat, error) { return fstatPlain(fd) }

func statPath(path string, followSymlinks bool) (fileStat, error) {
	return statPathPlain(path, followSymlinks)
}

func sysOpen(path string, flag int, perm uint32) (int, error) { return unix.Open(path, flag, perm) }

// kernelInterface reports a file of procfs, sysfs and the like, which are
// Linux's; elsewhere there are none to refuse.
func (sysFile) kernelInterface(fileStat) bool { return false }
