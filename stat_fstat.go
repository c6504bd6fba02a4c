//go:build unix && !linux

package lockfile

func fstat(fd int) (fileStat, error) { return fstatPlain(fd) }

// kernelInterface reports a file of procfs, sysfs and the like, which are
// Linux's; elsewhere there are none to refuse.
func (sysFile) kernelInterface(fileStat) bool { return false }
