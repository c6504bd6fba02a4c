//go:build darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package lockfile

import "golang.org/x/sys/unix"

func fstat(fd int) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileStat{}, err
	}
	return newFileStat(&st), nil
}
