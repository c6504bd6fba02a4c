package lockfile

import (
	"errors"
	"fmt"

	"github.com/golockfile/lockfile/internal/printable"
)

// ErrLocked reports that the lock is held by someone else: another process,
// or another lock object in this process. Errors that carry it are
// [*LockError] values.
var ErrLocked = errors.New("locked by another holder")

// ErrSymlink reports that the last element of the lock file's path is a
// symbolic link, which is refused unless [WithFollowSymlinks] is given.
var ErrSymlink = errors.New("lock file path is a symbolic link")

// ErrHardLink reports a lock file that may be a hard link to another file:
// it has a second name, or its directory lets another user add a name and
// remove it again before the lock call could see it. Such a directory is
// owned by a user other than the caller or root, or is writable by its
// group or others without the sticky bit (ACLs are not read); with
// [WithFollowSymlinks] it is the directory the link leads to. What writes
// into the file refuses both before creating or writing a byte. The
// caller's own user is not guarded against: it can write what the caller can.
var ErrHardLink = errors.New("lock file may be a hard link to another file")

// ErrNotRegular reports a path that names a device, a named pipe, a
// directory or, on Linux, a file of procfs, sysfs and the like, where a
// regular file is needed: by what writes into it, and by [Inspect].
var ErrNotRegular = errors.New("lock file is not a regular file")

// LockError is the error returned when the lock is held by someone else.
// errors.Is(err, ErrLocked) holds for it. Package etcdlock returns it too,
// with the lock's key as Path.
type LockError struct {
	// Path is the lock file's path as given.
	Path string
	// Holder is the first line of the file's content from byte 1 on, with
	// surrounding white space removed: what the holder wrote if it is a
	// LockFile, such as "1234;web-1". A holder that writes nothing leaves
	// whatever an earlier holder wrote, so Holder can name a process that
	// is gone; it is empty when the file is empty, and when Shared is set.
	Holder string
	// Shared reports that the lock is held by shared holders, who write
	// nothing.
	Shared bool
	// Err is ErrLocked, or an error that wraps ErrLocked together with
	// the reason a wait ended, such as context.DeadlineExceeded.
	Err error
}

// Error names the path, quoted if it holds unprintable bytes, and, when
// known, the holder.
func (e *LockError) Error() string {
	msg := fmt.Sprintf("lockfile: cannot lock %s: %v", printable.Quote(e.Path), e.Err)
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
