//go:build aix || darwin || freebsd || solaris

package lockfile

import "golang.org/x/sys/unix"

// oSearch opens a directory for searching only.
const oSearch = unix.O_SEARCH
