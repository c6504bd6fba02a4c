//go:build darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package lockfile

func fstat(fd int) (fileStat, error) { return fstatPlain(fd) }
