package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// AcquireSimple takes the lock as [NewSimple] does, but if it is held it
// waits until the holder releases it or ctx is done, whichever comes first.
//
// The wait is a blocking lock call in the kernel, so the lock changes hands
// as soon as the holder releases it, without polling. If ctx ends first, the
// error is a [*LockError] naming the holder at that moment, for which both
// errors.Is(err, ErrLocked) and errors.Is(err, ctx.Err()) hold. It returns
// then even if the kernel call never does, as on a hung network mount.
//
// However many calls give up waiting, a process keeps at most one thread
// and one descriptor blocked in the kernel for each lock file; both are
// gone once the lock is released.
//
// Because a waiter opens the file before it waits, the path may name a new
// file by the time the old one is unlocked (someone removed the lock file
// and someone else created and locked a new one). The lock is returned only
// if the locked file is still the one at the path; otherwise the wait starts
// over on the new file.
func AcquireSimple(ctx context.Context, path string, opts ...Option) (*SimpleLockFile, error) {
	c, err := newSimpleConfig(opts)
	if err != nil {
		return nil, err
	}
	f, err := lockWait(ctx, path, c)
	if err != nil {
		return nil, err
	}
	return newSimpleLockFile(path, f, c)
}

// Acquire takes the lock as [AcquireSimple] does and then writes the
// content, as [New] does.
func Acquire(ctx context.Context, path string, opts ...Option) (*LockFile, error) {
	c, content, err := newContentConfig(opts)
	if err != nil {
		return nil, err
	}
	f, err := lockWait(ctx, path, c)
	if err != nil {
		return nil, err
	}
	return newLockFile(path, f, content, c)
}

// lockWait locks the file at path, waiting while someone else holds it.
func lockWait(ctx context.Context, path string, c *config) (*os.File, error) {
	for {
		f, err := openLockFile(path, c)
		if err != nil {
			return nil, err
		}
		if err := tryLock(f); !errors.Is(err, ErrLocked) {
			if err != nil {
				return nil, lockFailed(f, path, err)
			}
			return f, nil
		}
		w, err := joinWaiter(path, f)
		if err != nil {
			return nil, lockFailed(f, path, err)
		}
		select {
		case locked := <-w.handoff:
			if sameFile(locked, path, c) {
				return locked, nil
			}
			release(locked, path) // a file no longer at path; try the one there now
		case <-w.done:
			if w.err != nil {
				return nil, &fs.PathError{Op: "lock", Path: path, Err: w.err}
			}
			// The lock went to another caller, or was free for a moment
			// while no one was receiving: try again.
		case <-ctx.Done():
			return nil, &LockError{Path: path, Holder: readHolder(w.file),
				Err: fmt.Errorf("%w; stopped waiting: %w", ErrLocked, ctx.Err())}
		}
	}
}

// sameFile reports whether f is the file now at path.
func sameFile(f *os.File, path string, c *config) bool {
	stat := os.Lstat
	if c.followSymlinks {
		stat = os.Stat
	}
	atPath, err := stat(path)
	if err != nil {
		return false
	}
	locked, err := f.Stat()
	return err == nil && os.SameFile(locked, atPath)
}

// A waiter is the one blocking lock call that this process makes on one lock
// file. Every caller waiting on that file listens to it, and it hands the
// lock to one of them. Sharing it is what bounds the threads and descriptors
// of abandoned waits: a call that gives up cannot pull its thread out of the
// kernel, but it leaves none of its own behind.
type waiter struct {
	file    *os.File      // locked by the blocking call; read for the holder
	handoff chan *os.File // unbuffered: only a caller receiving now gets the lock
	done    chan struct{} // closed when the waiter has finished
	err     error         // why the blocking call failed, set before done closes
}

var waiters = struct {
	sync.Mutex
	byPath map[string]*waiter
}{byPath: map[string]*waiter{}}

// joinWaiter returns the waiter on the file that probe refers to, starting
// one if there is none. It takes ownership of probe: a new waiter blocks on
// it, and if a waiter exists already probe is closed.
func joinWaiter(path string, probe *os.File) (*waiter, error) {
	key, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	probeInfo, err := probe.Stat()
	if err != nil {
		return nil, err
	}
	waiters.Lock()
	defer waiters.Unlock()
	if w := waiters.byPath[key]; w != nil {
		if info, err := w.file.Stat(); err == nil && os.SameFile(info, probeInfo) {
			probe.Close()
			return w, nil
		}
		// The path names another file now. The old waiter stays until its
		// file is unlocked, and then finds no one to give the lock to.
	}
	w := &waiter{file: probe, handoff: make(chan *os.File), done: make(chan struct{})}
	waiters.byPath[key] = w
	go w.wait(key)
	return w, nil
}

func (w *waiter) wait(key string) {
	// Never unlocked: the thread that sat in the kernel exits with this
	// goroutine instead of going back to the scheduler's pool.
	runtime.LockOSThread()
	defer close(w.done)

	w.err = waitLock(w.file)
	waiters.Lock()
	if waiters.byPath[key] == w {
		delete(waiters.byPath, key)
	}
	waiters.Unlock()

	if w.err != nil {
		w.file.Close()
		return
	}
	select {
	case w.handoff <- w.file:
	default:
		release(w.file, key) // everyone who waited has given up
	}
}
