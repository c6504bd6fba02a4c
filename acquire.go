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
// and one descriptor blocked in the kernel for each lock file (each
// spelling of its path, to be exact: a hard link or a path through a
// symbolic link to a directory counts as another); both are
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
	// Allocated before the wait, not between the release and the caller.
	l := &SimpleLockFile{path: path}
	f, st, err := lockWait(ctx, path, c)
	if err != nil {
		return nil, err
	}
	if err := l.hold(f, st, nil, c); err != nil {
		return nil, err
	}
	return l, nil
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
	if err := l.hold(f, st, l.content, c); err != nil {
		return nil, err
	}
	return l, nil
}

// lockWait locks the file at path, waiting while someone else holds it,
// and describes the locked file.
func lockWait(ctx context.Context, path string, c *config) (sysFile, fileStat, error) {
	for {
		probe, st, opened, err := tryLockFile(path, c, true)
		switch {
		case err == nil:
			return probe, st, nil
		case !opened:
			return sysFile{}, fileStat{}, err
		case !errors.Is(err, ErrLocked):
			return sysFile{}, fileStat{}, lockFailed(probe, path, err)
		}
		waitedFor, err := probe.stat()
		if err != nil {
			return sysFile{}, fileStat{}, lockFailed(probe, path, err)
		}
		locked, ok, err := waitFor(ctx, path, probe, waitedFor, c)
		if err != nil {
			return sysFile{}, fileStat{}, err
		}
		if !ok {
			continue // the lock went to another caller of this process
		}
		// While this caller waited, the file may have grown or shrunk, and
		// the path may have come to name another file. The locked file is
		// the one waited for, so one look at the path tells both.
		if st, err := statPath(path, c.followSymlinks); err == nil && st.sameFile(waitedFor) {
			return locked, st, nil
		}
		release(locked, path) // a file no longer at path; try the one there now
	}
}

// waitFor waits until the file described by st, which probe has open, is
// locked for this caller, or ctx is done. It returns the locked file (probe
// itself, or the waiter's) and true, or false if the caller should try again.
// It closes probe unless it returns it.
func waitFor(ctx context.Context, path string, probe sysFile, st fileStat, c *config) (sysFile, bool, error) {
	gaveUp := func(holder string) error {
		return &LockError{Path: path, Holder: holder,
			Err: fmt.Errorf("%w; stopped waiting: %w", ErrLocked, ctx.Err())}
	}
	switch {
	case ctx.Err() != nil:
		defer probe.close()
		return sysFile{}, false, gaveUp(readHolder(probe))
	case ctx.Done() == nil:
		// Nothing can end this wait, so it may block in this goroutine's
		// own thread; no other caller will be left waiting on it.
		if err := probe.waitLock(); err != nil {
			probe.close()
			return sysFile{}, false, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		return probe, true, nil
	}
	// The wait is the waiter's from here on: probe is closed before it,
	// not on the way from the release to the caller.
	probe.close()
	// Waiters are found by absolute path, so that a relative one means the
	// same file after a change of directory. Only a real wait needs it,
	// and so only a real wait pays for the getcwd(2) behind it.
	key, err := filepath.Abs(path)
	if err != nil {
		return sysFile{}, false, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	w := joinWaiter(key, path, st, c)
	select {
	case locked := <-w.handoff:
		return locked, true, nil
	case <-w.done:
		if w.err != nil {
			return sysFile{}, false, &fs.PathError{Op: "lock", Path: path, Err: w.err}
		}
		// The lock went to another caller, or was free for a moment
		// while no one was receiving, or the path names another file.
		return sysFile{}, false, nil
	case <-ctx.Done():
		// The holder is read through a descriptor of its own: on Windows,
		// a read through the waiter's handle would queue behind its
		// blocked lock call.
		holder := ""
		if f, err := openFile(path, os.O_RDONLY, 0, c.followSymlinks); err == nil {
			holder = readHolder(f)
			f.close()
		}
		return sysFile{}, false, gaveUp(holder)
	}
}

// A waiter is the one blocking lock call that this process makes on one lock
// file. Every caller waiting on that file listens to it, and it hands the
// lock to one of them. Sharing it is what bounds the threads and descriptors
// of abandoned waits: a call that gives up cannot pull a thread out of the
// kernel, but it leaves none of its own behind.
type waiter struct {
	file    fileStat      // the file waited for
	handoff chan sysFile  // unbuffered: only a caller receiving now gets the lock
	done    chan struct{} // closed when the waiter has finished
	err     error         // why the blocking call failed, set before done closes
}

var waiters = struct {
	sync.Mutex
	byPath map[string]*waiter
}{byPath: map[string]*waiter{}}

// joinWaiter returns the waiter on the file described by info, starting one
// if there is none.
func joinWaiter(key, path string, file fileStat, c *config) *waiter {
	waiters.Lock()
	defer waiters.Unlock()
	if w := waiters.byPath[key]; w != nil && w.file.sameFile(file) {
		return w
	}
	// If there is a waiter, the path names another file now. The old
	// waiter stays until its file is unlocked, and then finds no one to
	// give the lock to.
	w := &waiter{file: file, handoff: make(chan sysFile), done: make(chan struct{})}
	waiters.byPath[key] = w
	go w.wait(key, path, c)
	return w
}

// wait blocks on a descriptor of its own, so that callers keep theirs free
// for reading the holder and can give up without touching it.
func (w *waiter) wait(key, path string, c *config) {
	defer close(w.done)
	f, err := openLockFile(path, c)
	opened := err == nil
	if opened {
		if st, statErr := f.stat(); statErr != nil || !st.sameFile(w.file) {
			f.close()
			opened, err = false, statErr // moved: callers start over
		}
	}
	if opened {
		if err = f.waitLock(); err != nil {
			f.close()
			opened = false
		}
	}
	if opened {
		select {
		case w.handoff <- f:
			// Let the receiver, ready now, run before this cleanup.
			// A caller that joins meanwhile waits for done and starts
			// over, as one that joins just before the handoff does.
			runtime.Gosched()
		default:
			release(f, path) // everyone who waited has given up
		}
	}
	waiters.Lock()
	if waiters.byPath[key] == w {
		delete(waiters.byPath, key)
	}
	waiters.Unlock()
	w.err = err
}
