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

// lockWait locks the file at path, waiting while someone else holds it,
// and describes the locked file.
func lockWait(ctx context.Context, path string, c *config) (sysFile, fileStat, error) {
	if ctx == nil {
		err := fmt.Errorf("nil Context: %w", fs.ErrInvalid)
		return sysFile{}, fileStat{}, &fs.PathError{Op: "lock", Path: path, Err: err}
	}
	for {
		f, st, err := lockNowAndLook(ctx, path, c)
		if !errors.Is(err, ErrLocked) {
			return f, st, err
		}
		if ctx.Err() != nil {
			return sysFile{}, fileStat{}, gaveUp(ctx, path, c)
		}
		waitFor, err := statPath(path, c.followSymlinks)
		if err != nil {
			continue // removed since: lock the file there now
		}
		locked, ok, err := waitUntilLocked(ctx, path, waitFor, c)
		if err != nil {
			return sysFile{}, fileStat{}, err
		}
		if !ok {
			continue // the lock went to another caller of this process
		}
		// While this caller waited, the file may have grown or shrunk, and
		// the path may have come to name another file. The locked file is
		// the one waited for, so one look at the path tells both.
		if st, err := statPath(path, c.followSymlinks); err == nil && st.sameFile(waitFor) {
			return locked, st, nil
		}
		release(locked) // a file no longer at path; try the one there now
	}
}

// gaveUp describes a wait that ctx ended.
func gaveUp(ctx context.Context, path string, c *config) error {
	return heldError(path, c, fmt.Errorf("%w; stopped waiting: %w", ErrLocked, ctx.Err()))
}

// heldError describes a lock that is held, with err, naming the holder at
// that moment, read through a descriptor of its own: on Windows, a read
// through a handle blocked in a lock call would queue behind it.
func heldError(path string, c *config, err error) error {
	if holder, state := heldHere(path, c.followSymlinks); state != free {
		return &LockError{Path: path, Holder: holder, Shared: state == heldShared, Err: err}
	}
	f, openErr := openFile(path, os.O_RDONLY, 0, c.followSymlinks)
	if openErr != nil {
		return &LockError{Path: path, Err: err}
	}
	defer f.close()
	return describeHolder(f, err)
}

// waitUntilLocked waits until the file described by target is locked for
// this caller, or ctx is done. It returns the locked file and true, or
// false if the caller should try again: the lock went to another caller of
// this process, or the path names another file now.
func waitUntilLocked(ctx context.Context, path string, target fileStat,
	c *config) (sysFile, bool, error) {
	if ctx.Done() == nil {
		// Nothing can end this wait, so it may block in this goroutine's
		// own thread; no other caller will be left waiting on it.
		return waitHere(path, target, c)
	}
	// Waiters are found by absolute path, so that a relative one means the
	// same file after a change of directory. Only a real wait needs it,
	// and so only a real wait pays for the getcwd(2) behind it.
	key, err := filepath.Abs(path)
	if err != nil {
		return sysFile{}, false, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if c.mode == shared {
		key = "shared:" + key // a waiter waits for one kind of lock
	}
	w := joinWaiter(key, path, target, c)
	if w == nil {
		err := fmt.Errorf("%w; cannot wait: %w", ErrLocked, errTooManyWaits)
		return sysFile{}, false, heldError(path, c, err)
	}
	select {
	case locked := <-w.handoff:
		return locked, true, nil
	case <-w.done:
		if w.err != nil {
			return sysFile{}, false, w.err
		}
		// The lock went to another caller, or was free for a moment
		// while no one was receiving, or the path names another file.
		return sysFile{}, false, nil
	case <-ctx.Done():
		w.leave()
		return sysFile{}, false, gaveUp(ctx, path, c)
	}
}

// waitHere opens the file at path and waits for its lock in this goroutine.
func waitHere(path string, target fileStat, c *config) (sysFile, bool, error) {
	f, err := openTarget(path, target, c)
	if err != nil || f == nil {
		return sysFile{}, false, err
	}
	if err := f.waitLock(c.mode); err != nil {
		f.close()
		return sysFile{}, false, &fs.PathError{Op: "lock", Path: path, Err: err}
	}
	return *f, true, nil
}

// openTarget opens the file at path if it is still the one described by
// target, and returns nil if the path names another file now.
func openTarget(path string, target fileStat, c *config) (*sysFile, error) {
	f, err := openLockFile(path, c)
	if err != nil {
		return nil, err
	}
	st, err := f.stat()
	if err != nil {
		f.close()
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if !st.sameFile(target) {
		f.close()
		return nil, nil
	}
	return &f, nil
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
	err     error         // why the wait failed, set before done closes

	// Guarded by waiters' mutex.
	listeners int     // callers that joined and have not given up
	f         sysFile // what the blocking call blocks on, once blocking
	blocking  bool    // the blocking call may be running
	finished  bool    // the blocking call has returned, or never began
	detached  bool    // every caller gave up; see leave
}

var waiters = struct {
	sync.Mutex
	byPath  map[string]*waiter
	running int // waiters not finished
}{byPath: map[string]*waiter{}}

// errTooManyWaits reports a wait that could not begin because this process
// already makes maxWaiters waiting kernel calls.
var errTooManyWaits = errors.New("too many lock files waited for in this process")

// maxWaiters bounds the waiters of this process, each a thread blocked in
// the kernel: past Go's thread limit the process dies. A variable so that a
// test can lower it.
var maxWaiters = 1000

// joinWaiter returns the waiter on the file described by info, starting one
// if there is none and the process has fewer than maxWaiters; otherwise it
// returns nil.
func joinWaiter(key, path string, file fileStat, c *config) *waiter {
	waiters.Lock()
	defer waiters.Unlock()
	if w := waiters.byPath[key]; w != nil && w.file.sameFile(file) {
		w.listeners++
		return w
	}
	if waiters.running >= maxWaiters {
		return nil
	}
	waiters.running++
	// If there is a waiter, the path names another file now. The old
	// waiter stays until its file is unlocked, and then finds no one to
	// give the lock to.
	w := &waiter{file: file, handoff: make(chan sysFile), done: make(chan struct{}), listeners: 1}
	waiters.byPath[key] = w
	go w.wait(key, path, c)
	return w
}

// leave records that a caller gave up. Once every caller has, no one will
// take the lock when the holder lets go, yet the blocking call takes it,
// and would keep it until the Go scheduler runs the waiter, milliseconds on
// a busy process. So the descriptor the call blocks on is detached from the
// lock file where the platform can (see sysFile.detach): the kernel then
// drops the lock as the call returns. A waiter that has not begun its call
// never begins it.
func (w *waiter) leave() {
	waiters.Lock()
	defer waiters.Unlock()
	if w.listeners--; w.listeners > 0 || w.finished || w.detached {
		return
	}
	w.detached = !w.blocking || w.f.detach()
}

// wait blocks on a descriptor of its own, so that callers can give up
// without touching it.
func (w *waiter) wait(key, path string, c *config) {
	defer close(w.done)
	f, err := openTarget(path, w.file, c)
	blocked := f != nil && w.begin(*f)
	if blocked {
		if lockErr := f.waitLock(c.mode); lockErr != nil {
			err = &fs.PathError{Op: "lock", Path: path, Err: lockErr}
		}
	} else if f != nil {
		f.close() // every caller gave up before the call began
	}
	if w.finish() {
		if blocked {
			f.close() // the stand-in that detach put in the file's place
		}
		w.remove(key)
		return // no error: a caller that joined since starts over
	}
	w.err = err
	switch {
	case blocked && err == nil:
		select {
		case w.handoff <- *f:
			// Let the receiver, ready now, run before this cleanup. A
			// caller that joins meanwhile waits for done and starts
			// over, as one that joins just before the handoff does.
			runtime.Gosched()
		default:
			release(*f) // everyone who waited has given up
		}
	case blocked:
		f.close()
	}
	w.remove(key)
}

// begin records f as what the waiter blocks on, unless every caller has
// given up already.
func (w *waiter) begin(f sysFile) bool {
	waiters.Lock()
	defer waiters.Unlock()
	if w.detached {
		return false
	}
	w.f, w.blocking = f, true
	return true
}

// finish records that the waiter's call has returned, or never began, and
// reports whether every caller gave up before that.
func (w *waiter) finish() bool {
	waiters.Lock()
	defer waiters.Unlock()
	w.blocking, w.finished = false, true
	return w.detached
}

// remove takes the finished waiter out of the table.
func (w *waiter) remove(key string) {
	waiters.Lock()
	defer waiters.Unlock()
	waiters.running--
	if waiters.byPath[key] == w {
		delete(waiters.byPath, key)
	}
}
