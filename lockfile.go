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
// with [errTooManyWaits]. When every caller waiting on a file has given up
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
// them, do not either.
//
// # Planted links
//
// A lock in a shared directory such as /tmp must not let another user
// direct it at a file of their choosing. A symbolic link as the last
// element of the path is refused by every call ([ErrSymlink]); links in
// the directories above it are followed. What writes into the file refuses
// one that may be a hard link to another file ([ErrHardLink]). Each has an
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
// with [errUnsupported], never with a lock that does not exclude; so does
// every attempt on js/wasm, wasip1 and plan9. The package compiles
// everywhere.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// LockFile is a held lock whose file names its holder: a space, the expanded
// content template and a newline, the format zc.lockfile writes. A zero or
// nil LockFile behaves as a zero or nil SimpleLockFile, with empty Content.
type LockFile struct {
	SimpleLockFile
	content []byte // as written, with the space and the newline
	// room holds the content of a usual template, so that taking a lock
	// costs no allocation for it.
	room [80]byte
}

// New takes the lock as [NewSimple] does and then writes the content
// template (see [WithContentTemplate]) into the file, replacing whatever was
// there. A refused attempt changes nothing in the file, so the holder's
// content stays readable. The file's modification time is the time the
// lock was last taken by New or Acquire.
//
// If the file was removed between New's open and its lock (by a holder
// that deletes the file before it lets go, say), New starts over on the
// file at the path: the removed file locks out no one.
func New(path string, opts ...Option) (*LockFile, error) {
	l, c, err := newLockFile(path, opts)
	if err != nil {
		return nil, err
	}
	f, st, err := lockNowAndLook(path, c)
	if err != nil {
		return nil, err
	}
	if err := l.hold(f, st, c); err != nil {
		return nil, err
	}
	return l, nil
}

// newLockFile returns a LockFile, not yet held, with its content rendered,
// so that a failing host name lookup is reported before the file is touched.
func newLockFile(path string, opts []Option) (*LockFile, *config, error) {
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
	l := &LockFile{SimpleLockFile: SimpleLockFile{path: path}}
	if l.content, err = t.Render(l.room[:0]); err != nil {
		return nil, nil, fmt.Errorf("lockfile: content template: %w", err)
	}
	return l, c, nil
}

// Path returns the lock file's path as it was given.
func (l *LockFile) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}

// Content returns the content written into the file, without the leading
// space and the trailing newline.
func (l *LockFile) Content() string {
	if l == nil || len(l.content) < 2 {
		return "" // not made by New or Acquire
	}
	return string(l.content[1 : len(l.content)-1])
}

// Fd returns the descriptor that holds the lock, as [SimpleLockFile.Fd]
// does; on a nil LockFile, ^uintptr(0).
func (l *LockFile) Fd() uintptr {
	if l == nil {
		return ^uintptr(0)
	}
	return l.SimpleLockFile.Fd()
}

// Close releases the lock and closes the file, as [SimpleLockFile.Close]
// does.
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
	err := checkWritable(f, st, l.path, c)
	if err == nil {
		if writeErr := writeContent(f, st.size, l.content); writeErr != nil {
			err = &fs.PathError{Op: "write", Path: l.path, Err: writeErr}
		}
	}
	if err != nil {
		return errors.Join(err, release(f, l.path))
	}
	return l.SimpleLockFile.hold(f, st, c)
}

// Acquire takes the lock as [AcquireSimple] does and then writes the
// content, as [New] does.
func Acquire(ctx context.Context, path string, opts ...Option) (*LockFile, error) {
	l, c, err := newLockFile(path, opts)
	if err != nil {
		return nil, err
	}
	f, st, err := lockWait(ctx, path, c)
	if err != nil {
		return nil, err
	}
	if err := l.hold(f, st, c); err != nil {
		return nil, err
	}
	return l, nil
}
