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
	if err := l.hold(f, st, nil, c); err != nil {
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
	if err := l.hold(f, st, l.content, c); err != nil {
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

func newSharedConfig(opts []Option) (*config, error) {
	c, err := newConfig(opts)
	switch {
	case err != nil:
		return nil, err
	case c.template != nil:
		return nil, &OptionError{Option: "WithContentTemplate", Value: strconv.Quote(c.template.source),
			Reason: "a shared lock writes no content"}
	case c == &defaultConfig:
		return &defaultSharedConfig, nil
	}
	c.mode = shared
	return c, nil
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
	return release(l.f, l.path)
}

// Close releases the lock and closes the file, as [SimpleLockFile.Close]
// does.
func (l *LockFile) Close() error {
	if l == nil {
		return fs.ErrInvalid
	}
	return l.SimpleLockFile.Close()
}

// release unlocks f and closes it.
func release(f sysFile, path string) error {
	unlockErr, closeErr := f.unlockAndClose()
	switch {
	case unlockErr != nil:
		return &fs.PathError{Op: "unlock", Path: path, Err: errors.Join(unlockErr, closeErr)}
	case closeErr != nil:
		return &fs.PathError{Op: "close", Path: path, Err: closeErr}
	}
	return nil
}

// lockNow opens the lock file and locks it without waiting. If it cannot
// lock it, it closes it. A lock that this process holds is found before
// the file is opened, where the kernel cannot tell lock objects apart.
func lockNow(path string, c *config) (sysFile, error) {
	if holder, state := heldHere(path, c.followSymlinks, readHolder); state.excludes(c.mode) {
		return sysFile{}, &LockError{Path: path, Holder: holder, Shared: state == heldShared, Err: ErrLocked}
	}
	f, err := openLockFile(path, c)
	if err != nil {
		return sysFile{}, err
	}
	if err := f.tryLock(c.mode); err != nil {
		return sysFile{}, lockFailed(f, path, err)
	}
	return f, nil
}

// maxRemoved bounds how often a lock call starts over because the file it
// locked had been removed, which takes a program deleting lock files as
// fast as they are locked, or a path whose file has no name to find, such
// as /proc/self/fd/N of a deleted file or a memfd with WithFollowSymlinks.
const maxRemoved = 100

// lockNowAndLook is lockNow for callers that write into the file, or may:
// it also describes the locked file. If the file was removed between the
// open and the lock (see [Deleting a lock file]), it starts over on the file
// at the path now.
func lockNowAndLook(path string, c *config) (sysFile, fileStat, error) {
	for range maxRemoved {
		f, err := lockNow(path, c)
		if err != nil {
			return sysFile{}, fileStat{}, err
		}
		st, err := f.stat()
		if err != nil {
			release(f, path)
			return sysFile{}, fileStat{}, &fs.PathError{Op: "stat", Path: path, Err: err}
		}
		if !st.removed() {
			return f, st, nil
		}
		release(f, path)
	}
	return sysFile{}, fileStat{}, &fs.PathError{Op: "open", Path: path, Err: errRemoved}
}

// errRemoved reports a path whose file kept having no name once locked.
var errRemoved = fmt.Errorf("the file locked at this path has been removed, %d times in a row: %w", maxRemoved, fs.ErrNotExist)

// lockFailed closes f, which is not locked, and describes why.
func lockFailed(f sysFile, path string, err error) error {
	defer f.close()
	if errors.Is(err, ErrLocked) {
		return describeHolder(f, path, err)
	}
	return &fs.PathError{Op: "lock", Path: path, Err: err}
}

// describeHolder returns the LockError for a lock refused with err, naming
// the holder as seen through f.
func describeHolder(f sysFile, path string, err error) *LockError {
	if state, _ := f.testLock(); state == heldShared {
		return &LockError{Path: path, Shared: true, Err: err}
	}
	return &LockError{Path: path, Holder: readHolder(f), Err: err}
}

// openLockFile opens an existing file without O_CREATE first, as
// zc.lockfile does with "r+" before "a+". Linux's fs.protected_regular
// refuses O_CREATE on another user's file in a sticky directory such as
// /tmp, so a lock file shared between users must be opened without it.
// O_EXCL on creation keeps that true even when two processes race to create.
// Neither open truncates: the holder's content must survive a refused try.
func openLockFile(path string, c *config) (sysFile, error) {
	access := os.O_RDWR
	if c.mode == shared {
		access = os.O_RDONLY // a shared lock writes nothing
	}
	createFlag := access | os.O_CREATE | os.O_EXCL
	if c.followSymlinks {
		// O_EXCL never follows a link, so it would refuse a link to a
		// file that does not exist yet.
		createFlag = access | os.O_CREATE
	}
	var (
		f   sysFile
		err error
	)
	for range 8 {
		f, err = openFile(path, access, 0, c.followSymlinks)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		f, err = openFile(path, createFlag, c.perm, c.followSymlinks)
		if !errors.Is(err, fs.ErrExist) {
			break // created, or failed for a reason retrying cannot fix
		}
		// Created by someone else between the two opens: open theirs.
	}
	return f, err
}

// checkRegular refuses a device, a named pipe or a directory as a file to
// write into: content written there would land on a disk, a terminal or
// another program.
func checkRegular(st fileStat, path string) error {
	if !st.regular() {
		return &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	return nil
}

// checkLinks refuses a file with more than one name as a file to write
// into, unless c allows it: the other name may be a file someone else cares
// about, linked to the lock path.
func checkLinks(st fileStat, path string, c *config) error {
	if st.linked() && !c.hardLinks {
		return &fs.PathError{Op: "open", Path: path, Err: ErrHardLink}
	}
	return nil
}

// hold finishes taking a lock on f, which is locked and, if content or a
// hook is to write into it, described by st: it writes content, if any,
// runs the hook, and records the lock as held. If either step fails, or
// the hook panics, the lock is released and f closed.
func (l *SimpleLockFile) hold(f sysFile, st fileStat, content []byte, c *config) (err error) {
	held := false
	defer func() {
		if !held {
			err = errors.Join(err, release(f, l.path))
		}
	}()
	if content != nil || c.onLock != nil {
		if err := checkRegular(st, l.path); err != nil {
			return err
		}
	}
	if content != nil || c.onLock != nil && c.mode == exclusive { // may write
		if f.kernelInterface(st) {
			return &fs.PathError{Op: "open", Path: l.path, Err: ErrNotRegular}
		}
		if err := checkLinks(st, l.path, c); err != nil {
			return err
		}
	}
	if content != nil {
		if err := writeContent(f, st.size, content); err != nil {
			return &fs.PathError{Op: "write", Path: l.path, Err: err}
		}
	}
	if c.onLock != nil {
		if err := f.lendFile(l.path, c.onLock); err != nil {
			return fmt.Errorf("lockfile: on-lock hook for %s: %w", l.path, err)
		}
	}
	l.f, l.held = f, true
	held = true
	return nil
}
