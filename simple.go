package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
)

// SimpleLockFile is a held lock on a lock file. It writes nothing into the
// file; [WithOnLock] may. Its methods are safe for concurrent use.
//
// A zero SimpleLockFile holds no lock, like a closed one. On a nil
// *SimpleLockFile, Close returns [fs.ErrInvalid], as os.File's does.
//
// The lock is held until Close, even if the SimpleLockFile itself is
// dropped: nothing but Close or the end of the process releases it.
type SimpleLockFile struct {
	path string
	mu   sync.Mutex
	f    sysFile
	held bool // false once closed

	loss *lossWatch // made by the first Lost; see lost.go
}

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

// NewSimple takes an exclusive lock on the file at path, creating the file
// if it does not exist, and returns at once. If someone else holds the
// lock, the error is a [*LockError] for which errors.Is(err, ErrLocked)
// holds; other errors wrap the system's, as [os.OpenFile]'s do.
//
// NewSimple writes nothing into the file; a [WithOnLock] hook may. It locks
// whatever the path opens, a device included, and does not look at the file
// again once it is locked (see [Deleting a lock file]). On Linux it locks a
// named pipe at once, as opening one for reading and writing waits for no
// peer; flock(1), which opens it for reading only, waits there for a
// writer, and zc.lockfile fails on it.
func NewSimple(path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSimpleConfig(opts)
	if err != nil {
		return nil, err
	}
	return lockSimple(path, c)
}

// lockSimple takes a lock that writes no content, without waiting.
func lockSimple(path string, c *config) (*SimpleLockFile, error) {
	if c.onLock == nil {
		f, err := lockNow(path, c)
		if err != nil {
			return nil, err
		}
		return &SimpleLockFile{path: path, f: f, held: true}, nil
	}
	f, st, err := lockNowAndLook(path, c) // the hook may write
	if err != nil {
		return nil, err
	}
	l := &SimpleLockFile{path: path}
	if err := l.hold(f, st, c); err != nil {
		return nil, err
	}
	return l, nil
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

func newSimpleConfig(opts []Option) (*config, error) {
	c, err := newConfig(opts)
	if err == nil && c.template != nil {
		err = templateRefused(c, "a SimpleLockFile writes no content; use New or Acquire")
	}
	return c, err
}

func newSharedConfig(opts []Option) (*config, error) {
	c, err := newConfig(opts)
	switch {
	case err != nil:
		return nil, err
	case c.template != nil:
		return nil, templateRefused(c, "a shared lock writes no content")
	case c == &defaultConfig:
		return &defaultSharedConfig, nil
	}
	c.mode = shared
	return c, nil
}

// templateRefused is the error for a content template given to a lock
// that writes no content.
func templateRefused(c *config, reason string) error {
	return &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(c.template.source), Reason: reason}
}

// newLockFile returns a LockFile, not yet held, with its content rendered,
// so that a failing host name lookup is reported before the file is touched.
func newLockFile(path string, opts []Option) (*LockFile, *config, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	template := c.template
	if template == nil {
		template = defaultTemplate
	}
	l := &LockFile{SimpleLockFile: SimpleLockFile{path: path}}
	if l.content, err = template.render(l.room[:0]); err != nil {
		return nil, nil, fmt.Errorf("lockfile: content template: %w", err)
	}
	return l, c, nil
}

// Path returns the lock file's path as it was given.
func (l *SimpleLockFile) Path() string {
	if l == nil {
		return ""
	}
	return l.path
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

// Fd returns the file descriptor (on Windows, the handle) that holds the
// lock. It is valid until Close; closing it or changing its lock breaks the
// lock. Fd returns ^uintptr(0) for a closed or nil lock.
func (l *SimpleLockFile) Fd() uintptr {
	if l == nil {
		return ^uintptr(0)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return ^uintptr(0)
	}
	return l.f.handle()
}

// Close releases the lock and closes the file, which stays on disk. Closing
// a closed lock does nothing and returns nil.
func (l *SimpleLockFile) Close() error {
	if l == nil {
		return fs.ErrInvalid
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return nil
	}
	l.held = false
	l.endLoss()
	return release(l.f, l.path)
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

// hold finishes taking a lock on f, which is locked and described by st:
// it runs the hook, if any, and records the lock as held. If the hook
// fails or panics, or the file is not one it may be given, the lock is
// released and f closed.
func (l *SimpleLockFile) hold(f sysFile, st fileStat, c *config) (err error) {
	held := false
	defer func() {
		if !held {
			err = errors.Join(err, release(f, l.path))
		}
	}()
	if c.onLock != nil {
		if err := checkHookFile(f, st, l.path, c); err != nil {
			return err
		}
		if err := f.lendFile(l.path, c.onLock); err != nil {
			return fmt.Errorf("lockfile: on-lock hook for %s: %w", l.path, err)
		}
	}
	l.f, l.held = f, true
	held = true
	return nil
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
