package lockfile

import (
	"io/fs"
	"os"
)

// lockState is what testLock learns of a lock held by someone else.
type lockState int

const (
	free lockState = iota
	heldShared
	heldExclusive
)

// refuseSymlink returns an ErrSymlink error if the last element of path is
// a symbolic link, and nil otherwise.
func refuseSymlink(path string) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return nil
}
