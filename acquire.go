package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
)

// AcquireSimple takes the lock as [NewSimple] does, but if it is held it
// waits until the holder releases it or ctx is done, whichever comes first.
//
// The wait is a blocking lock call in the kernel, so the lock changes hands
// as soon as the holder releases it, without polling. If ctx ends first, the
// error is a [*LockError] naming the holder at that moment, for which both
// errors.Is(err, ErrLocked) and errors.Is(err, ctx.Err()) hold. It returns
// then even if the kernel call never does, as on a hung network mount. A nil
// ctx is refused, before the file is opened, with an error for which
// errors.Is(err, fs.ErrInvalid) holds.
//
// However many calls give up waiting, a process keeps at most one thread
// and one descriptor blocked in the kernel for each lock file (each
// spelling of its path, to be exact: a hard link or a path through a
// symbolic link to a directory counts as another); both are
// gone once the lock is released. It keeps at most 1000 such waits in all,
// far below Go's limit of 10,000 threads (see debug.SetMaxThreads): a wait
// on another lock file beyond them fails at once with a [*LockError] for
// which errors.Is(err, ErrTooManyWaits) holds. When the holder lets go of
// a file whose every waiting caller has given up, the kernel call still
// takes the lock for a moment, and attempts made then are refused: on Unix
// until the call returns (microseconds, unless the machine is overloaded),
// on Windows until the Go scheduler runs the waiting goroutine (milliseconds
// in a busy process).
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
	f, st, err := lockWait(ctx, path, c)
	if err != nil {
		return nil, err
	}
	l := &SimpleLockFile{path: path}
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
	if ctx == nil {
		return sysFile{}, fileStat{}, &fs.PathError{Op: "lock", Path: path, Err: fmt.Errorf("nil Context: %w", fs.ErrInvalid)}
	}
	// Each round that does not return has waited in waitFor, which ends
	// when ctx does; tryLockFile bounds its own starts over.
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
		if !ok || locked != probe {
			probe.close()
		}
		if err != nil {
			return sysFile{}, fileStat{}, err
		}
		if !ok {
			continue // the lock went to another caller of this process
		}
		// The file may have grown or shrunk while this caller waited, and
		// may not be the one at the path any more.
		st, err = locked.stat()
		if err == nil {
			if atPath, statErr := statPath(path, c.followSymlinks); statErr == nil && atPath.sameFile(st) {
				return locked, st, nil
			}
		}
		release(locked, path) // a file no longer at path; try the one there now
	}
}

// waitFor waits until the file described by st, which probe has open, is
// locked for this caller, or ctx is done. It returns the locked file (probe
// itself, or the waiter's) and true, or false if the caller should try again.
func waitFor(ctx context.Context, path string, probe sysFile, st fileStat, c *config) (sysFile, bool, error) {
	gaveUp := func() error {
		// The holder is read through probe: on Windows, a read through the
		// waiter's handle would queue behind its blocked lock call.
		return &LockError{Path: path, Holder: readHolder(probe),
			Err: fmt.Errorf("%w; stopped waiting: %w", ErrLocked, ctx.Err())}
	}
	switch {
	case ctx.Err() != nil:
		return sysFile{}, false, gaveUp()
	case ctx.Done() == nil:
		// Nothing can end this wait, so it may block in this goroutine's
		// own thread; no other caller will be left waiting on it.
		if err := probe.waitLock(); err != nil {
			return sysFile{}, false, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		return probe, true, nil
	}
	// Waiters are found by absolute path, so that a relative one means the
	// same file after a change of directory. Only a real wait needs it,
	// and so only a real wait pays for the getcwd(2) behind it.
	key, err := filepath.Abs(path)
	if err != nil {
		return sysFile{}, false, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	w := joinWaiter(key, path, st, c)
	if w == nil {
		return sysFile{}, false, &LockError{Path: path, Holder: readHolder(probe),
			Err: fmt.Errorf("%w; cannot wait: %w", ErrLocked, ErrTooManyWaits)}
	}
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
		w.leave()
		return sysFile{}, false, gaveUp()
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
// lock file: the kernel then drops the lock as the call returns. A waiter
// that has not begun its call never begins it.
func (w *waiter) leave() {
	waiters.Lock()
	defer waiters.Unlock()
	if w.listeners--; w.listeners > 0 || w.finished || w.detached {
		return
	}
	w.detached = !w.blocking || w.f.detach()
}

// wait blocks on a descriptor of its own, so that callers keep theirs free
// for reading the holder and can give up without touching it.
func (w *waiter) wait(key, path string, c *config) {
	defer close(w.done)
	f, opened, err := openWaited(path, c, w.file)
	blocked := opened && w.begin(f)
	if blocked {
		err = f.waitLock()
	} else if opened {
		f.close() // every caller gave up before the call began
	}
	if w.end(key) {
		if blocked {
			f.close() // the stand-in that detach put in the file's place
		}
		return // no error: a caller that joined since starts over
	}
	w.err = err
	if !blocked {
		return
	}
	if err != nil {
		f.close()
		return
	}
	select {
	case w.handoff <- f:
	default:
		release(f, path) // everyone who waited has given up
	}
}

// openWaited opens the file at path for a waiter. If it is not the file
// waited for any more, it is closed and callers start over.
func openWaited(path string, c *config, file fileStat) (sysFile, bool, error) {
	f, err := openLockFile(path, c)
	if err != nil {
		return sysFile{}, false, err
	}
	if st, err := f.stat(); err != nil || !st.sameFile(file) {
		f.close()
		return sysFile{}, false, err
	}
	return f, true, nil
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

// end records that the waiter's call has returned, or never began, and
// reports whether every caller gave up before that.
func (w *waiter) end(key string) bool {
	waiters.Lock()
	defer waiters.Unlock()
	w.blocking, w.finished = false, true
	waiters.running--
	if waiters.byPath[key] == w {
		delete(waiters.byPath, key)
	}
	return w.detached
}
