package lockfile

import (
	"errors"
	"io/fs"
	"os"
)

// A Status says whether a lock is held, and by whom.
type Status struct {
	Held   bool   // someone holds the lock
	Shared bool   // it is held by shared holders, who write nothing
	Holder string // the holder, as LockError.Holder names it; empty when Shared
}

// Inspect reports whether the lock on the file at path is held, and by
// whom, without creating or writing the file: a missing file is a free
// lock. It refuses what [NewSimple] refuses, and a file that is not a
// regular file. Where the system cannot ask without locking (flock(2),
// Windows), it locks for an instant, and a lock attempt at that instant may
// be refused.
func Inspect(path string) (Status, error) {
	if holder, state := heldHere(path, false); state != free {
		st, err := statPath(path, false)
		if err != nil {
			return Status{}, err
		}
		if err := checkRegular(st, path); err != nil {
			return Status{}, err
		}
		return Status{Held: true, Shared: state == heldShared, Holder: holder}, nil
	}
	f, err := openFile(path, os.O_RDONLY, 0, false)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, err
	}
	defer f.close()
	st, err := f.stat()
	if err != nil {
		return Status{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := checkRegular(st, path); err != nil {
		return Status{}, err
	}
	switch state, err := f.testLock(); {
	case err != nil:
		return Status{}, &fs.PathError{Op: "lock", Path: path, Err: err}
	case state == heldExclusive:
		return Status{Held: true, Holder: readHolder(f)}, nil
	case state == heldShared:
		return Status{Held: true, Shared: true}, nil
	}
	return Status{}, nil
}
