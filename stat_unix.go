//go:build darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package lockfile

func fstat(fd int) (fileStat, error) { return fstatPlain(fd) }

func statPath(path string, followSymlinks bool) (fileStat, error) {
	return statPathPlain(path, followSymlinks)
}
