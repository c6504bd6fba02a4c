package lockfile

import (
	"errors"
	"io/fs"
	"os"
)

// errUnsupported reports that the lock cannot be taken here at all: the
// platform has no file locking that excludes other processes, or the file
// system refuses to lock.
// errors.Is(errUnsupported, errors.ErrUnsupported) holds.
var errUnsupported error = unsupported{}

type unsupported struct{}

func (unsupported) Error() string        { return "file locking is not supported" }
func (unsupported) Is(target error) bool { return target == errors.ErrUnsupported }

// lockMode is the kind of lock a caller asks for.
type lockMode int

const (
	exclusive lockMode = iota
	shared
)

// lockState is what testLock and heldHere learn of a lock held by someone
// else.
type lockState int

const (
	free lockState = iota
	heldShared
	heldExclusive
)

// excludes reports whether a lock held as s refuses a lock of mode m.
func (s lockState) excludes(m lockMode) bool {
	return s == heldExclusive || s == heldShared && m == exclusive
}

// refuseSymlink returns an ErrSymlink error if the last element of path is
// a symbolic link, and nil otherwise.
func refuseSymlink(path string) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return nil
}
