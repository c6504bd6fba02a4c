//go:build unix

package lockfile

import (
	"errors"
	"io/fs"
	"slices"
	"sync"
	"syscall"
	"time"
)

// pollInterval is how often a watched lock that the system does not notify
// about is looked at.
const pollInterval = 100 * time.Millisecond

// idleGrace is how long a notifier is kept after the last watch went, for
// the next watch to reuse: a program that watches short-lived locks would
// otherwise make a notifier per lock, and Linux takes about 10 ms to close
// an inotify descriptor, so many would be open at once, using up the
// user's inotify instances.
const idleGrace = time.Second

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
	// close releases the notifier, which no goroutine waits on.
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

// watcher is the one watcher of the process: a goroutine waiting on a
// notifier while any lock is watched. The first watch starts the
// goroutine, which ends once no lock is watched; the notifier is kept
// idleGrace longer, and a watch in that time reuses it.
var watcher struct {
	mu       sync.Mutex
	n        notifier             // nil until a watch, and after idleGrace unused
	keys     map[*lossWatch]int   // the notified watches, and their keys
	notified map[int][]*lossWatch // the watches under each key
	polled   map[*lossWatch]struct{}
	looping  bool        // a goroutine runs watchLoop(n)
	idle     *time.Timer // set while n is kept for idleGrace, unused
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
		useNotifier(n)
	}
	if watcher.idle != nil {
		watcher.idle.Stop()
		watcher.idle = nil
	}
	if !watcher.looping {
		watcher.looping = true
		go watchLoop(watcher.n)
	}
	if key, err := watcher.n.add(w); err == nil {
		watcher.keys[w] = key
		watcher.notified[key] = append(watcher.notified[key], w)
	} else {
		startPolling(w)
	}
	look(w)
}

// useNotifier makes n the watcher's notifier. The caller holds the
// watcher's mutex, and there is no notifier.
func useNotifier(n notifier) {
	watcher.n = n
	watcher.keys = map[*lossWatch]int{}
	watcher.notified = map[int][]*lossWatch{}
	watcher.polled = map[*lossWatch]struct{}{}
}

// keepIdle keeps the notifier, which the watcher's goroutine leaves as no
// lock is watched, for idleGrace, then closes it unless a watch came. The
// caller holds the watcher's mutex.
func keepIdle() {
	var t *time.Timer
	t = time.AfterFunc(idleGrace, func() {
		watcher.mu.Lock()
		defer watcher.mu.Unlock()
		if watcher.idle == t {
			closeIdle()
		}
	})
	watcher.idle = t
}

// closeIdle closes the notifier kept idle, if there is one. It holds the
// watcher's mutex through the close, so that no new notifier is made
// before the old one is closed. The caller holds the watcher's mutex.
func closeIdle() {
	if watcher.idle == nil {
		return
	}
	watcher.idle.Stop()
	watcher.n.close()
	watcher.n, watcher.keys, watcher.notified, watcher.polled = nil, nil, nil, nil
	watcher.idle = nil
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
// to go ends the watcher's goroutine.
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
	if watching() == 0 {
		watcher.n.wake() // its goroutine sees that nothing is watched and ends
	}
}

// watching returns how many locks are watched, notified or polled. The
// caller holds the watcher's mutex.
func watching() int { return len(watcher.keys) + len(watcher.polled) }

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
// polled ones every pollInterval, until no lock is watched; then it leaves
// n to keepIdle. If n breaks, a poll notifier takes its place.
func watchLoop(n notifier) {
	var (
		keys     []notice
		lastPoll = time.Now()
	)
	watcher.mu.Lock()
	for {
		if watching() == 0 {
			watcher.looping = false
			keepIdle()
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
		for _, k := range keys {
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
		if !ok {
			// The notifier broke: poll what it notified about, with a
			// notifier of its own.
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
			n.close()
			return
		}
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

// endIdle closes the notifier kept idle now rather than at the end of
// idleGrace, for tests that count descriptors.
func endIdle() {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	closeIdle()
}
