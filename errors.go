package lockfile

import (
	"errors"
	"fmt"
)

// ErrLocked reports that the lock is held by someone else: another process,
// or another lock object in this process. Errors that carry it are
// [*LockError] values.
var ErrLocked = errors.New("locked by another holder")

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

// LockError is the error returned when the lock is held by someone else.
// errors.Is(err, ErrLocked) holds for it.
type LockError struct {
	// Path is the lock file's path as given.
	Path string
	// Holder is the first line of the file's content from byte 1 on, with
	// surrounding white space removed: what the holder wrote if it is a
	// LockFile, such as "1234;web-1". A holder that writes nothing leaves
	// whatever an earlier holder wrote, so Holder can name a process that
	// is gone; it is empty when the file is empty, and when Shared is set.
	Holder string
	// Shared reports that the lock is held by shared holders ([NewShared]),
	// who write nothing.
	Shared bool
	// Err is ErrLocked, or an error that wraps ErrLocked together with
	// the reason a wait ended, such as context.DeadlineExceeded.
	Err error
}

// Error names the path and, when known, the holder.
func (e *LockError) Error() string {
	msg := fmt.Sprintf("lockfile: cannot lock %s: %v", e.Path, e.Err)
	switch {
	case e.Shared:
		msg += " (held shared)"
	case e.Holder != "":
		msg += fmt.Sprintf(" (held by %q)", e.Holder)
	}
	return msg
}

// Unwrap returns Err.
func (e *LockError) Unwrap() error { return e.Err }

// OptionError reports an option that cannot be used as given. It is
// returned before the lock file is opened, so nothing on disk is touched.
type OptionError struct {
	// Option is the name of the function that made the option, such as
	// "WithContentTemplate", or "Option" for a nil Option.
	Option string
	// Value is the value that was given, as text.
	Value string
	// Reason says what is wrong with it.
	Reason string
}

// Error names the option, its value and the reason.
func (e *OptionError) Error() string {
	return fmt.Sprintf("lockfile: %s(%s): %s", e.Option, e.Value, e.Reason)
}
