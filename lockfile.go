// Package lockfile provides inter-process locks held on lock files, with the
// behaviour and on-disk format of Python's zc.lockfile.
//
// A lock is taken with [NewSimple] or [New], which never wait, or with
// [AcquireSimple] or [Acquire], which wait until the lock is free or a context
// ends; [NewShared] and [AcquireShared] take a shared lock, which many
// readers hold together. A lock is held until [SimpleLockFile.Close] or
// until the process exits, however it exits: the operating system releases
// it, so a crashed holder never leaves a stale lock behind. The lock file
// stays on disk after Close (see [Deleting a lock file]).
//
// # What excludes what
//
// A lock excludes every other lock taken on the same file, whether from
// another process or from another lock object in the same process, and
// whether taken by this package, by Python's zc.lockfile, or by util-linux
// flock(1) on Unix. Goroutines sharing one lock object share the lock. Locks
// are advisory: a program that does not ask for the lock can still read and
// write the file.
//
// # Content
//
// [LockFile] writes who holds it into the file once the lock is held, exactly
// as zc.lockfile does: a space, the content, a newline, and nothing after it.
// With the template "{pid};{hostname}" a file reads " 8244;web-1\n". When a
// lock is refused, the [LockError] carries that content as Holder, so start-up
// code can say who is running already.
//
// # Waiting
//
// [AcquireSimple], [Acquire] and [AcquireShared] wait with a blocking lock
// call in the kernel, so the lock changes hands as soon as it is released,
// without polling. A call whose context ends returns at once, even if the
// kernel call never does (on a hung network mount, say): the kernel call
// is made by one goroutine per path and kind of lock, shared by every
// caller in the process, so abandoned waits leave at most one thread and
// one descriptor per path and kind behind. A process makes at most 1000
// such kernel calls at once; a wait that would need another fails at once
// with [ErrTooManyWaits]. When every caller waiting on a file has given up
// and the holder lets go, the kernel call still takes the lock for a
// moment, and attempts made then are refused: on Linux until the call
// returns (microseconds), on Windows and other Unix systems until the Go
// scheduler runs the waiting goroutine (milliseconds in a busy process).
//
// Where locks belong to the process (see [Platforms]), a wait for another
// process tries again every millisecond at most instead of blocking in the
// kernel: a blocked call could not be given up, and the lock it took at
// last would merge with the process's other locks on the file.
//
// # Deleting a lock file
//
// Never delete a lock file that anyone may lock. A lock is on the file, not
// on its name: a caller that opened the file before it was deleted can lock
// the deleted file while a newcomer creates and locks a new one at the path,
// and both hold "the" lock. [New], [Acquire], [AcquireSimple] and
// [NewSimple] with a hook check the file they locked still has a name, and
// after a wait that it is the one at the path, and start over if not. A bare
// NewSimple does not look; other programs, zc.lockfile and flock(1) among
// them, do not either. A holder learns of a deletion from
// [SimpleLockFile.Lost]: it should then stop the work the lock guards,
// and take the lock again to go on.
//
// # Planted links
//
// A lock in a shared directory such as /tmp must not let another user
// direct it at a file of their choosing. A symbolic link as the last
// element of the path is refused by every call ([ErrSymlink]); a file with
// more than one name, which a hard link planted at the path makes, is
// refused by everything that writes into it ([ErrHardLink]). Each has an
// option for the lock file that is meant to be reached that way.
//
// # Platforms
//
// Linux, macOS, the BSDs and illumos lock with flock(2) on the whole file,
// and Windows with LockFileEx on byte 0, the byte zc.lockfile locks. Both
// locks belong to the open file, so the kernel keeps lock objects apart. On
// Windows the lock is mandatory for that byte: no other process can read it
// while it is held, which is why the content starts at byte 1.
//
// AIX and Solaris have only POSIX record locks (fcntl F_SETLK), and those
// belong to the process: the kernel would grant a second lock object of the
// holding process the lock, and drop it when the process closes any
// descriptor of the file. There the package keeps a table of the locks the
// process holds, refuses or queues a second lock object itself, and keeps
// every descriptor it opens on a held file open until the lock is released.
// Code outside the package must do its part: never open and close a held
// lock file itself (os.ReadFile does both), which would drop the lock; read
// and write it through a [WithOnLock] hook's file, and leave that file
// open. The hooks of a process's shared holders share one file there, and
// with it the file offset: use ReadAt. Building with the tag lockfile_fcntl makes Linux lock the same way,
// to test code for those systems; such a build does not exclude flock(2)
// users on Linux, zc.lockfile and flock(1) among them.
//
// On NFS, Linux and FreeBSD take flock(2) locks as whole-file locks on the
// server that still belong to the open file: lock objects exclude each
// other across hosts and within a process, and closing another descriptor
// drops nothing. macOS's NFS client makes them the process's: keep one lock
// object per NFS lock file per process there. A file system that cannot
// lock at all (NFS without a lock manager, some FUSE and SMB mounts) fails
// with [ErrUnsupported], never with a lock that does not exclude; so does
// every attempt on js/wasm, wasip1 and plan9. The package compiles
// everywhere.
package lockfile

import (
	"fmt"
	"io/fs"
	"os"
)

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

// An Option changes how a lock is taken. Options are applied in order; a
// later option of the same kind replaces an earlier one. A nil Option is
// refused with an [*OptionError].
type Option func(*config)

type config struct {
	template       *template // nil unless WithContentTemplate was given
	perm           fs.FileMode
	onLock         func(*os.File) error
	followSymlinks bool
	hardLinks      bool
	mode           lockMode // set by NewShared and AcquireShared, not by an option
	// Why an option was refused: a later option of the same kind
	// replaces an earlier one, a refused one included.
	nilErr, templateErr, modeErr error
}

// defaultTemplate is what New writes without WithContentTemplate. It is
// parsed once and never changed.
var defaultTemplate, _ = parseTemplate("{pid}")

// defaultConfig is the configuration without options, shared so that taking
// a lock without options allocates none. It is never changed.
var defaultConfig = config{perm: 0o644}

// defaultSharedConfig is defaultConfig for a shared lock.
var defaultSharedConfig = config{perm: 0o644, mode: shared}

func newConfig(opts []Option) (*config, error) {
	if len(opts) == 0 {
		return &defaultConfig, nil
	}
	c := &config{perm: defaultConfig.perm}
	for i, opt := range opts {
		if opt == nil {
			if c.nilErr == nil {
				c.nilErr = &OptionError{Option: "Option", Value: "nil",
					Reason: fmt.Sprintf("option %d of %d is nil", i+1, len(opts))}
			}
			continue
		}
		opt(c)
	}
	for _, err := range []error{c.nilErr, c.templateErr, c.modeErr} {
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// WithContentTemplate sets what [New] and [Acquire] write into the lock file
// once they hold the lock. The default is "{pid}".
//
// The template uses the field syntax of Python's str.format, as zc.lockfile
// does: {pid} is the process id, {hostname} the host name (looked up only
// when the template names it), and {{ and }} are literal braces. Any other
// field, an empty {}, a format spec such as {pid:>8}, or an unmatched brace
// makes New and Acquire return an [*OptionError] before the file is opened.
// [NewSimple] and [AcquireSimple] write no content and refuse this option.
func WithContentTemplate(t string) Option {
	parsed, err := parseTemplate(t)
	return func(c *config) { c.template, c.templateErr = parsed, err }
}

// WithMode sets the permission bits of a lock file that does not exist yet
// and is created by this call. The default is 0o644. An existing file keeps
// its permissions. An exclusive lock opens the file for reading and
// writing, so a mode without the owner's read and write (0o600), or with
// bits other than permission bits, makes the call return an [*OptionError].
//
// The process umask clears bits of the mode, as it does for os.OpenFile,
// and is not checked: a umask that clears the owner's read or write makes a
// file that the first lock creates and later locks by its owner cannot open
// (root's excepted).
func WithMode(perm fs.FileMode) Option {
	var reason string
	switch {
	case perm&^fs.ModePerm != 0:
		reason = "only permission bits (0o777) may be set"
	case perm&0o600 != 0o600:
		reason = "the owner must be able to read and write (0o600): an exclusive lock opens the file for both"
	}
	var err error
	if reason != "" {
		err = &OptionError{Option: "WithMode", Value: fmt.Sprintf("%#o", uint32(perm)), Reason: reason}
	}
	return func(c *config) { c.perm, c.modeErr = perm, err }
}

// WithOnLock sets a function that runs once the lock is held, with the
// locked file; for [New] and [Acquire] it runs after the content is
// written. The file is open for reading and writing, or for reading only
// under a shared lock, and the hook may use it freely, for example to keep
// state in it, but must not close it or keep it once it returns. If it
// returns an error, the lock is released and the error is returned
// wrapped.
func WithOnLock(fn func(f *os.File) error) Option {
	return func(c *config) { c.onLock = fn }
}

// WithFollowSymlinks allows the last element of the path to be a symbolic
// link, which is then followed. By default such a path is refused with
// [ErrSymlink], so that a link planted in a shared directory cannot make a
// lock write its content into another file.
func WithFollowSymlinks() Option {
	return func(c *config) { c.followSymlinks = true }
}

// WithHardLinks allows [New], [Acquire] and a [WithOnLock] hook to write
// into a lock file that has more than one name, which they refuse by
// default with [ErrHardLink]. It is for a lock file that is given two names
// on purpose; [WithFollowSymlinks] does not imply it.
func WithHardLinks() Option {
	return func(c *config) { c.hardLinks = true }
}
