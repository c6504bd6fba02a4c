package lockfile

import "sync"

// Lost returns a channel that is closed when the lock can no longer be
// counted on to exclude others: when the path given no longer names the
// locked file, because the file was removed, renamed away or replaced by
// another file (renamed over it, or created after a remove), and when the
// package knows the lock is gone (see [Deleting a lock file] for what to
// do then). Close closes it too; for a closed or nil lock it is closed
// already. A new hard link to the file, a write into it and a change of
// its mode or times keep it open. [etcdlock.Lock] has the same Lost and
// Close, so code can be written once for either.
//
// The first call starts watching; a lock whose Lost is never called costs
// nothing. On Linux one inotify descriptor and one goroutine serve every
// watched lock of the process, and Lost closes within milliseconds of the
// change; once the user's inotify watches are used up
// (fs.inotify.max_user_watches), locks watched from then on are looked at
// every 100 ms instead, as all are if no inotify descriptor can be had. On
// macOS and the BSDs one kqueue and one goroutine watch the locks' own
// descriptors. Elsewhere on Unix each watched path is looked at every 100
// ms. The watcher stops when the last watched lock is closed. On Windows a
// held lock file cannot be removed or renamed, so Lost closes only at
// Close.
//
// Not seen where the system notifies, but seen by the looks every 100 ms:
// a directory of the path renamed or replaced, a symbolic link at the path
// ([WithFollowSymlinks]) changed, and a change made by another host on a
// network file system. Never seen: a lock lost on an NFS server, and,
// under POSIX record locks (see [Platforms]), a descriptor of the file
// closed by code outside the package.
//
// [etcdlock.Lock]: https://pkg.go.dev/github.com/golockfile/lockfile/etcdlock#Lock
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
		l.loss = &lossWatch{ch: make(chan struct{}), f: l.f, path: l.path}
		watch(l.loss)
		// After watch, so that a loseRecord in between finds the watch.
		if l.f.knownLost() {
			l.endLoss()
		}
	}
	return l.loss.ch
}

// Lost returns a channel that is closed when the lock is lost, as
// [SimpleLockFile.Lost] does; on a nil LockFile, a closed channel.
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
	path string
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
