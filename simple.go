package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// SimpleLockFile is a held lock on a lock file. It writes nothing into the
// file; [WithOnLock] may. Its methods are safe for concurrent use.
type SimpleLockFile struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed
}

// LockFile is a held lock whose file names its holder: a space, the expanded
// content template and a newline, the format zc.lockfile writes.
type LockFile struct {
	SimpleLockFile
	content string
}

// held keeps every open lock reachable until Close. Without it, a lock whose
// last reference was dropped would be released whenever the garbage
// collector ran the *os.File's cleanup, at no moment the program chose.
var held sync.Map // *SimpleLockFile -> struct{}

// NewSimple takes an exclusive lock on the file at path, creating the file if
// it does not exist, and returns at once. If someone else holds the lock, the
// error is a [*LockError] for which errors.Is(err, ErrLocked) holds.
//
// Other failures wrap the operating system's error, so errors.Is(err,
// fs.ErrNotExist) and errors.Is(err, fs.ErrPermission) work. The file is
// never truncated or written by NewSimple itself; a hook set with
// [WithOnLock] runs once the lock is held.
func NewSimple(path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSimpleConfig(opts)
	if err != nil {
		return nil, err
	}
	f, err := lockNow(path, c)
	if err != nil {
		return nil, err
	}
	return newSimpleLockFile(path, f, c)
}

// New takes the lock as [NewSimple] does and then writes the content
// template (see [WithContentTemplate]) into the file, replacing whatever was
// there. A refused attempt changes nothing in the file, so the holder's
// content stays readable.
func New(path string, opts ...Option) (*LockFile, error) {
	c, content, err := newContentConfig(opts)
	if err != nil {
		return nil, err
	}
	f, err := lockNow(path, c)
	if err != nil {
		return nil, err
	}
	return newLockFile(path, f, content, c)
}

// newSimpleLockFile and newLockFile finish taking the lock on f, which is
// locked; they release it and close f if that fails.
func newSimpleLockFile(path string, f *os.File, c *config) (*SimpleLockFile, error) {
	l := &SimpleLockFile{path: path}
	if err := l.hold(f, nil, c); err != nil {
		return nil, err
	}
	return l, nil
}

func newLockFile(path string, f *os.File, content []byte, c *config) (*LockFile, error) {
	l := &LockFile{SimpleLockFile: SimpleLockFile{path: path}, content: string(content[1 : len(content)-1])}
	if err := l.hold(f, content, c); err != nil {
		return nil, err
	}
	return l, nil
}

func newSimpleConfig(opts []Option) (*config, error) {
	c, err := newConfig(opts)
	if err == nil && c.template != nil {
		err = &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(c.template.source),
			Reason: "a SimpleLockFile writes no content; use New or Acquire"}
	}
	return c, err
}

// newContentConfig also renders the content, so that a failing host name
// lookup is reported before the file is touched.
func newContentConfig(opts []Option) (*config, []byte, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	if c.template == nil {
		c.template = defaultTemplate
	}
	content, err := c.template.render()
	if err != nil {
		return nil, nil, fmt.Errorf("lockfile: content template: %w", err)
	}
	return c, content, nil
}

// Path returns the lock file's path as it was given.
func (l *SimpleLockFile) Path() string { return l.path }

// Content returns the content written into the file, without the leading
// space and the trailing newline.
func (l *LockFile) Content() string { return l.content }

// Close releases the lock and closes the file, which stays on disk. Closing
// a closed lock does nothing and returns nil.
func (l *SimpleLockFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	held.Delete(l)
	return release(f, l.path)
}

// release unlocks explicitly before closing, as zc.lockfile does, so the
// lock is gone even if something else still shares the file description.
// The file is closed even when unlocking fails.
func release(f *os.File, path string) error {
	var unlockErr error
	if err := unlock(f); err != nil {
		unlockErr = &fs.PathError{Op: "unlock", Path: path, Err: err}
	}
	return errors.Join(unlockErr, f.Close())
}

// lockNow opens the lock file and locks it without waiting. On contention
// it reads the holder's content through the file it opened, then closes it.
func lockNow(path string, c *config) (*os.File, error) {
	for {
		f, err := openLockFile(path, c)
		if err != nil {
			return nil, err
		}
		info, err := f.Stat()
		if err != nil {
			return nil, lockFailed(f, path, err)
		}
		if err := tryLock(f); err != nil {
			return nil, lockFailed(f, path, err)
		}
		if stillAtPath(info, path, c) {
			return f, nil
		}
		release(f, path) // removed by a holder that let go between our open and lock
	}
}

// lockFailed closes f, which is not locked, and describes why.
func lockFailed(f *os.File, path string, err error) error {
	defer f.Close()
	if errors.Is(err, ErrLocked) {
		return &LockError{Path: path, Holder: readHolder(f), Err: err}
	}
	return &fs.PathError{Op: "lock", Path: path, Err: err}
}

// openLockFile opens an existing file without O_CREATE first, as
// zc.lockfile does with "r+" before "a+". Linux's fs.protected_regular
// refuses O_CREATE on another user's file in a sticky directory such as
// /tmp, so a lock file shared between users must be opened without it.
// O_EXCL on creation keeps that true even when two processes race to create.
// Neither open truncates: the holder's content must survive a refused try.
func openLockFile(path string, c *config) (*os.File, error) {
	createFlag := os.O_RDWR | os.O_CREATE | os.O_EXCL
	if c.followSymlinks {
		// O_EXCL never follows a link, so it would refuse a link to a
		// file that does not exist yet.
		createFlag = os.O_RDWR | os.O_CREATE
	}
	var (
		f   *os.File
		err error
	)
	for range 8 {
		f, err = openFile(path, os.O_RDWR, 0, c.followSymlinks)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		f, err = openFile(path, createFlag, c.perm, c.followSymlinks)
		if !errors.Is(err, fs.ErrExist) {
			break // created, or failed for a reason retrying cannot fix
		}
		// Created by someone else between the two opens: open theirs.
	}
	if err != nil {
		return nil, err
	}
	if err := checkRegular(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkRegular refuses a device, a named pipe or a directory: locking one
// would work on most systems and mean nothing.
func checkRegular(f *os.File, path string) error {
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = ErrNotRegular
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return nil
}

// refuseSymlink returns an ErrSymlink error if the last element of path is
// a symbolic link, and nil otherwise.
func refuseSymlink(path string) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return nil
}

// hold finishes taking a lock on f, which is locked: it writes content, if
// any, runs the hook, and records the lock as held. If either step fails,
// the lock is released and f closed.
func (l *SimpleLockFile) hold(f *os.File, content []byte, c *config) error {
	var err error
	if content != nil {
		if err = writeContent(f, content); err != nil {
			err = &fs.PathError{Op: "write", Path: l.path, Err: err}
		}
	}
	if err == nil && c.onLock != nil {
		if err = c.onLock(f); err != nil {
			err = fmt.Errorf("lockfile: on-lock hook for %s: %w", l.path, err)
		}
	}
	if err != nil {
		return errors.Join(err, release(f, l.path))
	}
	l.f = f
	held.Store(l, struct{}{})
	return nil
}
