//go:build unix

package lockfile

import (
	"errors"
	"io/fs"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// pollInterval is how often a watched lock that the system does not notify
// about is looked at.
const pollInterval = 100 * time.Millisecond

// A notifier tells the watcher which watched files the system says have
// changed: inotify on Linux, kqueue on macOS and the BSDs, nothing
// elsewhere.
type notifier interface {
	// add starts notifying about w's file and returns the key its events
	// will carry, or an error if the file is to be polled instead.
	add(w *lossWatch) (key int, err error)
	// remove stops notifying under key, which no watch uses any more.
	remove(key int)
	// wait blocks until the system notifies, timeout passes (never, if
	// timeout < 0) or wake is called, and appends the keys notified to
	// keys. A key of allKeys asks for a look at every watch. It returns
	// false once the notifier cannot wait any more.
	wait(timeout time.Duration, keys []notice) ([]notice, bool)
	// wake makes a wait in progress, or the next one, return. It is
	// called with the watcher's mutex held.
	wake()
	// close releases the notifier; the watcher's goroutine calls it as
	// it ends.
	close()
}

// A notice is one key the system notified about; gone says that the
// system dropped the key's watch, so its locks are to be polled.
type notice struct {
	key  int
	gone bool
}

// allKeys in a notice asks for a look at every notified watch: the system
// dropped notices.
const allKeys = -1

// watcher is the one watcher of the process, running while any lock is
// watched: a goroutine waiting on a notifier, which the first watched lock
// starts and the last one to stop stops.
var watcher struct {
	mu       sync.Mutex
	n        notifier             // nil while nothing is watched
	keys     map[*lossWatch]int   // the notified watches, and their keys
	notified map[int][]*lossWatch // the watches under each key
	polled   map[*lossWatch]struct{}
	count    int
}

// watch starts watching w's file and looks at it once, so that a loss
// before the call is seen too.
func watch(w *lossWatch) {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	if watcher.n == nil {
		n, err := newNotifier()
		if err != nil {
			n = newPollNotifier() // no inotify instance or kqueue left
		}
		startWatcher(n)
	}
	if key, err := watcher.n.add(w); err == nil {
		watcher.keys[w] = key
		watcher.notified[key] = append(watcher.notified[key], w)
	} else {
		startPolling(w)
	}
	watcher.count++
	look(w)
}

// startWatcher makes n the watcher, with its goroutine. The caller holds
// the watcher's mutex, and nothing is watched.
func startWatcher(n notifier) {
	watcher.n = n
	watcher.keys = map[*lossWatch]int{}
	watcher.notified = map[int][]*lossWatch{}
	watcher.polled = map[*lossWatch]struct{}{}
	go watchLoop(n)
}

// startPolling moves w to the watches looked at every pollInterval; the
// caller removes it from those notified under its key.
func startPolling(w *lossWatch) {
	delete(watcher.keys, w)
	watcher.polled[w] = struct{}{}
	if len(watcher.polled) == 1 {
		watcher.n.wake() // to wait with a timeout from now on
	}
}

// unwatch stops watching w's file, if it is watched.
func unwatch(w *lossWatch) {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	unwatchLocked(w)
}

// unwatchLocked is unwatch with the watcher's mutex held. The last watch
// to go stops the watcher.
func unwatchLocked(w *lossWatch) {
	if _, ok := watcher.polled[w]; ok {
		delete(watcher.polled, w)
	} else if key, ok := watcher.keys[w]; ok {
		delete(watcher.keys, w)
		if ws := deleteWatch(watcher.notified[key], w); len(ws) > 0 {
			watcher.notified[key] = ws
		} else {
			delete(watcher.notified, key)
			watcher.n.remove(key)
		}
	} else {
		return // not watched
	}
	if watcher.count--; watcher.count == 0 {
		watcher.n.wake() // its goroutine sees it is no longer the watcher and ends
		watcher.n, watcher.keys, watcher.notified, watcher.polled = nil, nil, nil, nil
	}
}

// watched reports whether w is watched.
func watched(w *lossWatch) bool {
	_, polled := watcher.polled[w]
	_, notified := watcher.keys[w]
	return polled || notified
}

func deleteWatch(ws []*lossWatch, w *lossWatch) []*lossWatch {
	for i, x := range ws {
		if x == w {
			ws[i] = ws[len(ws)-1]
			ws[len(ws)-1] = nil
			return ws[:len(ws)-1]
		}
	}
	return ws
}

// watchLoop waits on n and looks at the files n notifies about, and at the
// polled ones every pollInterval, until n is no longer the watcher.
func watchLoop(n notifier) {
	defer func() {
		// Closing an inotify descriptor waits for a grace period of the
		// kernel's, about 10 ms, holding this goroutine's thread: the
		// goroutines a loss just woke run first, not after it.
		runtime.Gosched()
		n.close()
	}()
	var (
		keys     []notice
		lastPoll = time.Now()
	)
	for {
		watcher.mu.Lock()
		if watcher.n != n {
			watcher.mu.Unlock()
			return
		}
		timeout := time.Duration(-1)
		if len(watcher.polled) > 0 {
			timeout = max(time.Until(lastPoll.Add(pollInterval)), 0)
		}
		watcher.mu.Unlock()

		var ok bool
		keys, ok = n.wait(timeout, keys[:0])

		watcher.mu.Lock()
		if watcher.n != n {
			watcher.mu.Unlock()
			return
		}
		for _, k := range keys {
			if watcher.n != n {
				break // the last watch went while looking
			}
			if k.key == allKeys {
				for _, ws := range watcher.notified {
					lookAt(ws)
				}
				continue
			}
			ws := watcher.notified[k.key]
			if k.gone {
				delete(watcher.notified, k.key)
				for _, w := range ws {
					startPolling(w)
				}
			}
			lookAt(ws)
		}
		if len(watcher.polled) > 0 && time.Since(lastPoll) >= pollInterval {
			lastPoll = time.Now()
			for w := range watcher.polled {
				look(w)
			}
		}
		if watcher.n != n {
			watcher.mu.Unlock()
			return // the last watch went while looking
		}
		if !ok {
			// The notifier broke: poll everything it notified about,
			// with a notifier of its own.
			p := newPollNotifier()
			watcher.n = p
			for _, ws := range watcher.notified {
				for _, w := range ws {
					startPolling(w)
				}
			}
			clear(watcher.notified)
			go watchLoop(p)
			watcher.mu.Unlock()
			return
		}
		watcher.mu.Unlock()
	}
}

// lookAt looks at each of ws, which unwatching may change.
func lookAt(ws []*lossWatch) {
	for _, w := range slices.Clone(ws) {
		look(w)
	}
}

// look closes w's Lost channel if its lock is lost, and stops watching it.
func look(w *lossWatch) {
	if watched(w) && gone(w) {
		w.lose()
		unwatchLocked(w)
	}
}

// gone reports whether w's lock can no longer be counted on: its
// descriptor is closed or describes a file with no name left, or the path
// (a symbolic link there followed) names another file or none. An error
// that says nothing about the path, such as a directory turned unreadable,
// is not taken for a loss.
func gone(w *lossWatch) bool {
	st, err := w.f.stat()
	if err != nil || st.removed() {
		return true
	}
	at, err := statPath(w.path, true)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
	}
	return !at.sameFile(st)
}

// pollNotifier notifies about nothing: its watcher polls every watch.
type pollNotifier struct {
	woken chan struct{}
}

func newPollNotifier() notifier { return &pollNotifier{woken: make(chan struct{}, 1)} }

func (*pollNotifier) add(*lossWatch) (int, error) { return 0, errors.ErrUnsupported }
func (*pollNotifier) remove(int)                  {}
func (*pollNotifier) close()                      {}

func (p *pollNotifier) wake() {
	select {
	case p.woken <- struct{}{}:
	default:
	}
}

func (p *pollNotifier) wait(timeout time.Duration, keys []notice) ([]notice, bool) {
	if timeout < 0 {
		<-p.woken
		return keys, true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.woken:
	case <-t.C:
	}
	return keys, true
}
