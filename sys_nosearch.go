//go:build dragonfly || netbsd || openbsd

package lockfile

import "golang.org/x/sys/unix"

// oSearch opens a directory for reading: these systems have no O_SEARCH,
// so a directory the caller may search but not read cannot hold a lock
// file that is written into.
const oSearch = unix.O_RDONLY
