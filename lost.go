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
// The first call starts watching (until then a lock costs nothing) and takes
// a relative path from the current directory. Linux, macOS and the BSDs
// notify in milliseconds; other Unix systems, and Linux past
// fs.inotify.max_user_watches, look every 100 ms. The last Close ends the
// watcher, its descriptor a second later. Not seen: a lock lost on NFS; on
// AIX and Solaris, a descriptor closed by other code; where the system
// notifies, a renamed or replaced directory of the path, or a
// [WithFollowSymlinks] link pointed elsewhere. Windows forbids removing or
// renaming a held lock file.
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
		path := l.f.name
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
