//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd || windows)

package lockfile

import (
	"io/fs"
	"os"
)

// On AIX and Solaris only fcntl(2) locks exist. They belong to the process,
// not the open file, and closing any descriptor of the file drops them, so
// they cannot keep two lock objects of one process apart. Here, as on
// platforms with no locking at all, every attempt fails before the file is
// opened or created.

func openFile(path string, flag int, perm fs.FileMode, followSymlinks bool) (*os.File, error) {
	return nil, &fs.PathError{Op: "open", Path: path, Err: ErrUnsupported}
}

func tryLock(f *os.File) error       { return ErrUnsupported }
func tryLockShared(f *os.File) error { return ErrUnsupported }
func waitLock(f *os.File) error      { return ErrUnsupported }
func unlock(f *os.File) error        { return ErrUnsupported }
