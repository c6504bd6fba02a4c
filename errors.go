package lockfile

import "errors"

// ErrLocked reports that the lock is held by someone else: another process,
// or another lock object in this process. Errors that carry it are
// [*LockError] values.
var ErrLocked = errors.New("locked by another holder")

// ErrUnsupported reports that the lock cannot be taken here at all: the
// platform has no suitable file locking, or the file system refuses to lock.
// errors.Is(ErrUnsupported, errors.ErrUnsupported) holds.
var ErrUnsupported error = unsupported{}

type unsupported struct{}

func (unsupported) Error() string        { return "file locking is not supported" }
func (unsupported) Is(target error) bool { return target == errors.ErrUnsupported }

// ErrSymlink reports that the last element of the lock file's path is a
// symbolic link, which is refused unless [WithFollowSymlinks] is given.
var ErrSymlink = errors.New("lock file path is a symbolic link")

// ErrNotRegular reports that the path names something other than a regular
// file, such as a device or a named pipe, where a regular file is needed:
// by [New] and [Acquire], which write into it, by a [WithOnLock] hook, and
// by [Holder]. [NewSimple] and [AcquireSimple] lock such a file as they
// find it.
var ErrNotRegular = errors.New("lock file is not a regular file")

// errHookClosed reports a hook that closed the file it was lent, where
// that drops the process's lock.
var errHookClosed = errors.New("the hook closed its file, which dropped this process's lock")
