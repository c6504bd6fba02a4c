// Package lockfile provides inter-process locks held on lock files, with the
// behaviour and on-disk format of Python's zc.lockfile.
//
// [NewSimple] and [New] take a lock at once or fail; [AcquireSimple] and
// [Acquire] wait until it is free or a context ends; [NewShared] and
// [AcquireShared] take a lock that many readers hold together. A lock is
// held until Close or until the process ends, however it ends: the system
// releases it, so a crashed holder leaves no stale lock behind.
//
// A lock excludes every other lock on the same file, whether taken by
// another process or by another lock object of this one, by this package,
// by zc.lockfile or by util-linux flock(1). Locks are advisory: a program
// that does not ask for the lock can still read and write the file.
//
// # File format
//
// [LockFile] writes who holds it into the file once the lock is held, as
// zc.lockfile does: a space, the expanded template, a newline and nothing
// more. With the template "{pid};{hostname}" the file reads " 8244;web-1\n".
// A refused caller's [LockError] names that holder.
//
// # Lock files on disk
//
// The lock file stays on disk after Close. Never delete a lock file that
// anyone may lock: the lock is on the file, not on its name, so a process
// that opened the file before it was deleted can lock it while a newcomer
// locks a new one at the path. Calls that write into the file or wait check
// that the file they locked is still at the path, and start over if not;
// a holder learns of it from [SimpleLockFile.Lost], and should then stop
// the work the lock guards, and take the lock again to go on.
// A symbolic link as the last element of the path is refused
// ([ErrSymlink]); links in the directories above it are followed. What
// writes into the file refuses one that may be a hard link to another
// file ([ErrHardLink]).
//
// # Platforms
//
// Linux, macOS, the BSDs and illumos lock with flock(2); Windows locks byte
// 0 with LockFileEx, and no other process can read that byte while it is
// held, so the content starts at byte 1. AIX and Solaris have only POSIX
// record locks, which belong to the process and are dropped when it closes
// any descriptor of the file: the package keeps a table of the process's
// locks, and code outside it must never open and close a held lock file
// (os.ReadFile does both): read it through a [WithOnLock] hook's file, with
// ReadAt. A program that `lockfile run` execs adopts the lock it inherits
// (LOCKFILE_FD). The build tag lockfile_fcntl makes Linux lock that way. On
// NFS, Linux and FreeBSD lock across hosts; macOS's locks there belong to
// the process. A file system that cannot lock fails with an error matching
// errors.ErrUnsupported, as every call does on js/wasm, wasip1 and plan9.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// LockFile is a held lock whose file names its holder (see File format). Its
// methods behave as [SimpleLockFile]'s, on a nil *LockFile too.
type LockFile struct {
	SimpleLockFile
	content []byte // as written, with the space and the newline
	// room holds the content of a usual template, so that taking a lock
	// costs no allocation for it.
	room [80]byte
}

// New takes the lock as [NewSimple] does and then writes the content
// template ([WithContentTemplate]) into the file, replacing what was there
// and setting its modification time. A refused attempt changes nothing in
// the file, so the holder's content stays readable.
func New(path string, opts ...Option) (*LockFile, error) {
	l, c, err := newLockFile(opts)
	if err != nil {
		return nil, err
	}
	return take(context.Background(), l, path, c, lockNowAndLook)
}

// newLockFile returns a LockFile, not yet held, with its content rendered,
// so that a failing host name lookup is reported before the file is touched.
func newLockFile(opts []Option) (*LockFile, *config, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	if c == &defaultConfig {
		c = &defaultContentConfig
	} else {
		c.content = true
	}
	t := c.template
	if t == nil {
		t = defaultTemplate
	}
	l := &LockFile{}
	if l.content, err = t.Render(l.room[:0]); err != nil {
		return nil, nil, fmt.Errorf("lockfile: content template: %w", err)
	}
	return l, c, nil
}

// Path is [SimpleLockFile.Path].
func (l *LockFile) Path() string {
	if l == nil {
		return ""
	}
	return l.f.name
}

// Content returns the content written into the file, without the leading
// space and the trailing newline.
func (l *LockFile) Content() string {
	if l == nil || len(l.content) < 2 {
		return "" // not made by New or Acquire
	}
	return string(l.content[1 : len(l.content)-1])
}

// Fd is [SimpleLockFile.Fd].
func (l *LockFile) Fd() uintptr {
	if l == nil {
		return ^uintptr(0)
	}
	return l.SimpleLockFile.Fd()
}

// Close is [SimpleLockFile.Close].
func (l *LockFile) Close() error {
	if l == nil {
		return fs.ErrInvalid
	}
	return l.SimpleLockFile.Close()
}

// hold writes l's content into f, which is locked and described by st,
// and then finishes as [SimpleLockFile.hold] does. If the file is not one
// to write into, or the write fails, the lock is released and f closed.
func (l *LockFile) hold(f sysFile, st fileStat, c *config) error {
	err := checkWritable(f, st, c)
	if err == nil {
		if writeErr := writeContent(f, st.size, l.content); writeErr != nil {
			err = &fs.PathError{Op: "write", Path: f.name, Err: writeErr}
		}
	}
	if err != nil {
		return errors.Join(err, release(f))
	}
	return l.SimpleLockFile.hold(f, st, c)
}

// Acquire takes the lock as [AcquireSimple] does and then writes the
// content, as [New] does.
func Acquire(ctx context.Context, path string, opts ...Option) (*LockFile, error) {
	l, c, err := newLockFile(opts)
	if err != nil {
		return nil, err
	}
	return take(ctx, l, path, c, lockWait)
}
