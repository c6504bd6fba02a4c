package lockfile

import "errors"

// ErrLocked reports that the lock is held by someone else: another process,
// or another lock object in this process. Errors that carry it are
// [*LockError] values.
var ErrLocked = errors.New("locked by another holder")

// ErrTooManyWaits reports that a wait could not begin because this process
// already makes as many waiting kernel calls as it allows (see [Waiting]).
// Errors that carry it are [*LockError] values that carry ErrLocked too.
var ErrTooManyWaits = errors.New("too many lock files waited for in this process")

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

// ErrHardLink reports a lock file that may be a hard link to another file:
// it has more than one name, or it is in a directory where another user
// could link a file to the path and remove the link again between the
// lock file's open and any look at it: one owned by another user than the
// caller or root, or one without the sticky bit that others may write, or
// a group other than the caller's. [New], [Acquire] and a [WithOnLock] hook
// refuse both unless [WithHardLinks] is given, before creating or writing
// a byte. No check guards against the caller's own user, who can write
// every file the caller can. [NewSimple] and [AcquireSimple] without a
// hook write nothing and lock such a file.
var ErrHardLink = errors.New("lock file may be a hard link to another file")

// ErrNotRegular reports that the path names something other than a regular
// file, such as a device or a named pipe, where a regular file is needed:
// by [New] and [Acquire], which write into it, by a [WithOnLock] hook, and
// by [Holder]. [NewSimple] and [AcquireSimple] lock such a file as they
// find it.
//
// On Linux, what writes also refuses a file of a file system that is the
// kernel's interface (procfs, sysfs and the like), where a write is an
// order to the kernel. Only a file that reports a size of 0 or one page,
// as those do, is asked about.
var ErrNotRegular = errors.New("lock file is not a regular file")
