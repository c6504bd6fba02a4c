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

// NewSimple takes an exclusive lock on the file at path, creating the file if
// it does not exist, and returns at once. If someone else holds the lock, the
// error is a [*LockError] for which errors.Is(err, ErrLocked) holds.
//
// Other failures wrap the operating system's error, so errors.Is(err,
// fs.ErrNotExist) and errors.Is(err, fs.ErrPermission) work. The file is
// never truncated or written by NewSimple itself; a hook set with
// [WithOnLock] runs once the lock is held.
//
// NewSimple is the bare cycle: an open and a lock, and at Close an unlock
// and a close, the calls flock(1) makes. As flock(1) and zc.lockfile do, it
// locks whatever the path opens for reading and writing, a device
// included: it writes nothing, so it has no cause to refuse one. It locks a
// named pipe too, at once on Linux, where opening one for reading and
// writing waits for no peer; there flock(1), which opens it for reading,
// waits for a writer, and zc.lockfile fails. Anything that writes, [New]
// or a hook, refuses all but a regular file with [ErrNotRegular].
//
// Nor does it look at the file again once locked. If another program
// deletes the lock file and then releases its lock at the very moment
// between NewSimple's open and its lock, NewSimple locks the deleted file,
// and a newcomer can lock a new file at the path beside it. [New],
// [AcquireSimple], [Acquire] and NewSimple with a hook look at the file
// they locked (they must, to write into it, or may as well) and start over
// if it has been removed. No lock file, looked at or not, survives being
// deleted while someone holds it: never delete a lock file that anyone may
// lock.
func NewSimple(path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSimpleConfig(opts)
	if err != nil {
		return nil, err
	}
	f, st, err := lockNow(path, c, c.onLock != nil)
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
	f, st, err := lockNow(path, c, true)
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

// release unlocks f and closes it. Closing alone would release the lock
// only once every copy of the descriptor is gone, and on Unix a child that
// os/exec is starting holds one until its exec is done, after the parent
// has resumed; Windows releases a closed handle's locks only when it gets
// round to it. Unlocking first releases the lock at once.
func release(f sysFile, path string) error {
	var unlockErr error
	if err := f.unlock(); err != nil {
		unlockErr = fmt.Errorf("unlock: %w", err)
	}
	if err := errors.Join(unlockErr, f.close()); err != nil {
		return fmt.Errorf("lockfile: releasing %s: %w", path, err)
	}
	return nil
}

// lockNow opens the lock file and locks it without waiting, and with look
// set describes the locked file. On contention it reads the holder's
// content through the file it opened, then closes it.
func lockNow(path string, c *config, look bool) (sysFile, fileStat, error) {
	f, st, opened, err := tryLockFile(path, c, look)
	if err != nil && opened {
		return sysFile{}, fileStat{}, lockFailed(f, path, err)
	}
	return f, st, err
}

// tryLockFile opens the lock file and locks it without waiting, and with
// look set describes the locked file; if that shows the file was removed
// between the open and the lock (by a holder that deletes it as it lets
// go, say), the lock excludes no one, and it starts over on the file at the
// path now. If the open succeeded and the rest did not, f is returned open
// and unlocked, with opened set, for the caller to report on or wait with.
func tryLockFile(path string, c *config, look bool) (f sysFile, st fileStat, opened bool, err error) {
	for startedOver := 0; ; startedOver++ {
		if startedOver == startOverLimit {
			return sysFile{}, fileStat{}, false, errStartedOver(path)
		}
		if f, err = openLockFile(path, c); err != nil {
			return sysFile{}, fileStat{}, false, err
		}
		if err = f.tryLock(); err != nil || !look {
			return f, fileStat{}, true, err
		}
		st, err = f.stat()
		if err == nil && !st.removed() {
			return f, st, true, nil
		}
		if err != nil {
			f.unlock()
			return f, fileStat{}, true, err
		}
		release(f, path)
	}
}

// startOverLimit bounds how many times in a row a lock attempt starts over
// on the file at the path because the file it locked was no longer there.
// Real removals repeat that rarely; a path that always opens a file without
// a name (/proc/self/fd/N of a deleted file or of a memfd, with
// WithFollowSymlinks) would repeat it for ever.
const startOverLimit = 100

func errStartedOver(path string) error {
	return &fs.PathError{Op: "lock", Path: path,
		Err: fmt.Errorf("the file locked had been removed, %d times in a row: %w", startOverLimit, fs.ErrNotExist)}
}

// lockFailed closes f, which is not locked, and describes why.
func lockFailed(f sysFile, path string, err error) error {
	defer f.close()
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
func openLockFile(path string, c *config) (sysFile, error) {
	createFlag := os.O_RDWR | os.O_CREATE | os.O_EXCL
	if c.followSymlinks {
		// O_EXCL never follows a link, so it would refuse a link to a
		// file that does not exist yet.
		createFlag = os.O_RDWR | os.O_CREATE
	}
	var (
		f   sysFile
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

// refuseSymlink returns an ErrSymlink error if the last element of path is
// a symbolic link, and nil otherwise.
func refuseSymlink(path string) error {
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
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
		if err := runHook(f, l.path, c.onLock); err != nil {
			return err
		}
	}
	l.f, l.held = f, true
	held = true
	return nil
}

// runHook gives the hook a file of its own on the locked file, closed when
// the hook returns, so that the hook cannot close the lock's descriptor.
func runHook(f sysFile, path string, hook func(*os.File) error) error {
	hookFile, err := f.osFile(path)
	if err != nil {
		return fmt.Errorf("lockfile: on-lock hook for %s: %w", path, err)
	}
	defer hookFile.Close()
	if err := hook(hookFile); err != nil {
		return fmt.Errorf("lockfile: on-lock hook for %s: %w", path, err)
	}
	return nil
}
