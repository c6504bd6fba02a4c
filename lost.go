package lockfile

import (
	"path/filepath"
	"sync"
)

// Lost returns a channel that is closed when the lock can no longer be
// counted on to exclude others: the path no longer names the locked file
// (it was removed, renamed away or replaced), or the package knows the lock
// is gone; and at Close. For a closed or nil lock it is closed already. A
// new hard link, a write, or a change of mode or times keep it open.
// etcdlock's Lock has the same Lost and Close, so code can serve both.
//
// The first call starts watching; a lock whose Lost is never called costs
// nothing. Linux watches with one inotify descriptor per process (locks
// past fs.inotify.max_user_watches are looked at every 100 ms), macOS and
// the BSDs with one kqueue, and Lost closes within milliseconds; there a
// directory of the path renamed or replaced is not seen. Other Unix
// systems look at the path every 100 ms. Never seen: a lock lost on an NFS
// server, and, on AIX and Solaris, a descriptor of the file closed by code
// outside the package. On Windows a held lock file cannot be removed or
// renamed.
func (l *SimpleLockFile) Lost() <-chan struct{} {
	if l == nil {
		return closedChan
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return closedChan
	}
	if l.loss == nil {
		path := l.path
		if abs, err := filepath.Abs(path); err == nil {
			path = abs // else the look resolves it, as the open did
		}
		l.loss = &lossWatch{ch: make(chan struct{}), f: l.f, path: path}
		watch(l.loss)
		// After watch, so that a loseRecord in between finds the watch.
		if l.f.knownLost() {
			l.endLoss()
		}
	}
	return l.loss.ch
}

// Lost is [SimpleLockFile.Lost].
func (l *LockFile) Lost() <-chan struct{} {
	if l == nil {
		return closedChan
	}
	return l.SimpleLockFile.Lost()
}

// closedChan is what Lost returns for a lock that is not held.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// A lossWatch is a lock's Lost channel and what its watcher needs to know.
type lossWatch struct {
	ch   chan struct{}
	once sync.Once
	f    sysFile // the lock's descriptor, open while the watch is registered
	path string  // absolute, unless the current directory could not be had
}

// lose closes the channel; later calls do nothing.
func (w *lossWatch) lose() { w.once.Do(func() { close(w.ch) }) }

// endLoss stops watching l's file and closes its Lost channel, if Lost was
// called. Close calls it, with l.mu held, before it releases the lock, so
// that the watcher never looks through a closed descriptor.
func (l *SimpleLockFile) endLoss() {
	if l.loss != nil {
		unwatch(l.loss)
		l.loss.lose()
	}
}
