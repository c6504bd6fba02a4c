package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// SimpleLockFile is a held lock on a lock file. It writes nothing into the
// file. Its methods are safe for concurrent use, and on a nil
// *SimpleLockFile they do not panic. The lock is held until Close, even if
// the SimpleLockFile is dropped.
type SimpleLockFile struct {
	mu   sync.Mutex
	f    sysFile // kept after Close, for Path
	held bool    // false once closed

	loss *lossWatch // made by the first Lost; see lost.go
}

// NewSimple takes an exclusive lock on the file at path, creating the file
// if it does not exist, and returns at once. If someone else holds the
// lock, the error is a [*LockError]; other errors are [*fs.PathError]
// values wrapping the system's. It locks whatever the path opens, a device
// or a named pipe included, and does not look at the file once it is locked.
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
		return &SimpleLockFile{f: f, held: true}, nil
	}
	// The hook may write: the file is looked at as New's is.
	return take(context.Background(), &SimpleLockFile{}, path, c, lockNowAndLook)
}

func newSimpleConfig(opts []Option) (*config, error) {
	c, err := newConfig(opts)
	if err == nil && c.template != nil {
		err = templateRefused(c, "a SimpleLockFile writes no content; use New or Acquire")
	}
	return c, err
}

// Path returns the lock file's path as it was given.
func (l *SimpleLockFile) Path() string {
	if l == nil {
		return ""
	}
	return l.f.name
}

// Fd returns the file descriptor (on Windows, the handle) that holds the
// lock, valid until Close; closing it breaks the lock. It returns
// ^uintptr(0) for a closed or nil lock.
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
// a closed lock returns nil; closing a nil one, [fs.ErrInvalid].
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
	return release(l.f)
}

// hold finishes taking a lock on f, which is locked and described by st:
// it runs the hook, if any, and records the lock as held. If the hook
// fails or panics, or the file is not one it may be given, the lock is
// released and f closed.
func (l *SimpleLockFile) hold(f sysFile, st fileStat, c *config) (err error) {
	held := false
	defer func() {
		if !held {
			err = errors.Join(err, release(f))
		}
	}()
	if c.onLock != nil {
		if err := checkHookFile(f, st, c); err != nil {
			return err
		}
		if err := f.lendFile(c.onLock); err != nil {
			return fmt.Errorf("lockfile: on-lock hook for %s: %w", f.name, err)
		}
	}
	l.f, l.held = f, true
	held = true
	return nil
}

// AcquireSimple takes the lock as [NewSimple] does, but while it is held it
// waits until it is released or ctx is done. The wait blocks in the
// kernel, and a call whose ctx ends returns at once, even if the kernel
// call does not: that call then
// takes the lock for an instant when it is released, and attempts made in
// that instant are refused. If ctx ends first, the error is a [*LockError]
// naming the holder, for which errors.Is(err, ctx.Err()) holds too. A nil ctx is an error matching
// [fs.ErrInvalid].
func AcquireSimple(ctx context.Context, path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSimpleConfig(opts)
	if err != nil {
		return nil, err
	}
	return acquireSimple(ctx, path, c)
}

// acquireSimple takes a lock that writes no content, waiting while it is held.
func acquireSimple(ctx context.Context, path string, c *config) (*SimpleLockFile, error) {
	// Allocated before the wait, not between the release and the caller.
	return take(ctx, &SimpleLockFile{}, path, c, lockWait)
}
