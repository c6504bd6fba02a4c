//go:build unix && !linux

package lockfile

func fstat(fd int) (fileStat, error) { return fstatPlain(fd) }
