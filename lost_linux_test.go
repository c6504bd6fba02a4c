package lockfile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mutator is a running mutate helper.
type mutator struct{ h *helper }

func startMutator(t *testing.T) *mutator { return &mutator{startHelper(t, "mutate")} }

// do runs one command in the helper and returns when it was made.
func (m *mutator) do(t *testing.T, command ...string) time.Time {
	t.Helper()
	fmt.Fprintln(m.h.stdin, strings.Join(command, " "))
	ns, err := strconv.ParseInt(m.h.expect(t, "done"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, ns)
}

// waitClosed waits for ch to close and returns when it saw it close.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) time.Time {
	t.Helper()
	select {
	case <-ch:
		return time.Now()
	case <-time.After(10 * time.Second):
		t.Fatalf("Lost not closed 10 s after %s", what)
	}
	return time.Time{}
}

// A way of losing a lock: the commands a mutator runs on the locked file
// at path, in a directory of its own.
type lossWay struct {
	name     string
	commands func(dir, path string) [][]string
}

var lossWays = []lossWay{
	{"remove", func(dir, path string) [][]string { return [][]string{{"rm", path}} }},
	{"rename away", func(dir, path string) [][]string {
		return [][]string{{"mv", path, filepath.Join(dir, "away")}}
	}},
	{"rename over", func(dir, path string) [][]string {
		other := filepath.Join(dir, "other")
		return [][]string{{"create", other}, {"mv", other, path}}
	}},
	{"remove and create", func(dir, path string) [][]string { return [][]string{{"recreate", path}} }},
}

// lockKinds are the kinds of lock whose loss is watched the same way.
var lockKinds = []struct {
	name string
	lock func(path string) (*SimpleLockFile, error)
}{
	{"exclusive", func(path string) (*SimpleLockFile, error) {
		l, err := New(path)
		if err != nil {
			return nil, err
		}
		return &l.SimpleLockFile, nil
	}},
	{"shared", func(path string) (*SimpleLockFile, error) { return NewShared(path) }},
}

// assertNotified fails unless l's file is watched through inotify, not
// looked at every pollInterval.
func assertNotified(t *testing.T, l *SimpleLockFile) {
	t.Helper()
	l.mu.Lock()
	w := l.loss
	l.mu.Unlock()
	watcher.mu.Lock()
	n := watcher.n
	_, notified := watcher.keys[w]
	_, polled := watcher.polled[w]
	watcher.mu.Unlock()
	if _, ok := n.(*inotify); !ok || !notified || polled {
		t.Fatalf("the watch is not an inotify one: notifier %T, notified %v, polled %v",
			n, notified, polled)
	}
}

// Each way of losing the file closes Lost, for exclusive and shared locks
// watched through inotify: the latency from the change, made by another
// process, to the channel's close is logged (over 100 losses per way).
func TestLostWhenFileIsLost(t *testing.T) {
	noWatcherAfter(t)
	m := startMutator(t)
	for _, way := range lossWays {
		for _, kind := range lockKinds {
			t.Run(way.name+"/"+kind.name, func(t *testing.T) {
				lostWhenFileIsLost(t, m, way, kind.name, kind.lock)
			})
		}
	}
}

// lostWhenFileIsLost loses 100 locks of a kind, which lock takes, the way
// given, and logs the latencies.
func lostWhenFileIsLost(t *testing.T, m *mutator, way lossWay, kind string,
	lock func(string) (*SimpleLockFile, error)) {
	var latencies []time.Duration
	for i := range 100 {
		dir := filepath.Join(testDir(t), strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "lock")
		l, err := lock(path)
		if err != nil {
			t.Fatal(err)
		}
		lost := l.Lost()
		assertNotified(t, l)
		commands := way.commands(dir, path)
		for _, c := range commands[:len(commands)-1] {
			m.do(t, c...)
		}
		if isClosed(lost) {
			t.Fatalf("Lost closed before the file was lost")
		}
		changed := m.do(t, commands[len(commands)-1]...)
		closed := waitClosed(t, way.name, lost)
		latencies = append(latencies, max(closed.Sub(changed), 0))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(latencies)
	q := func(p int) time.Duration { return latencies[(len(latencies)-1)*p/100] }
	t.Logf("%s, %s: p50 %v, p90 %v, p99 %v, max %v over %d losses", way.name, kind,
		q(50), q(90), q(99), q(100), len(latencies))
}

// Shared holders in one process each see the loss, under flock(2), where
// each has a descriptor of its own, and under record locks, where they
// share one.
func TestLostSharedHolders(t *testing.T) {
	noWatcherAfter(t)
	m := startMutator(t)
	path := tempLockPath(t)
	a, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lostA, lostB := a.Lost(), b.Lost()
	m.do(t, "rm", path)
	waitClosed(t, "rm", lostA)
	waitClosed(t, "rm", lostB)
}

// None of these changes loses the lock: each is followed by the loss of
// another watched lock (the sentinel), and the watcher reads the system's
// notices in order, so once the sentinel's Lost has closed the change has
// been looked at. A real loss afterwards still closes Lost.
func TestLostNotClosedByHarmlessChanges(t *testing.T) {
	noWatcherAfter(t)
	m := startMutator(t)
	dir := testDir(t)
	path := filepath.Join(dir, "lock")
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lost := l.Lost()
	harmless := []struct {
		name string
		do   func()
	}{
		{"a new hard link elsewhere", func() {
			m.do(t, "link", path, filepath.Join(dir, "second-name"))
		}},
		{"that link removed", func() { m.do(t, "rm", filepath.Join(dir, "second-name")) }},
		{"a write", func() { m.do(t, "write", path) }},
		{"a chmod", func() { m.do(t, "chmod", path) }},
		{"a touch", func() { m.do(t, "touch", path) }},
		{"another process's refused attempt", func() {
			if verb, _ := tryInHelper(t, path); verb != "locked" {
				t.Fatalf("another process's attempt: %s, want locked", verb)
			}
		}},
		{"a rename of another name of the file", func() {
			m.do(t, "link", path, filepath.Join(dir, "third-name"))
			m.do(t, "mv", filepath.Join(dir, "third-name"), filepath.Join(dir, "fourth-name"))
		}},
	}
	for i, change := range harmless {
		sentinelPath := filepath.Join(dir, "sentinel"+strconv.Itoa(i))
		sentinel, err := NewSimple(sentinelPath)
		if err != nil {
			t.Fatal(err)
		}
		sentinelLost := sentinel.Lost()
		change.do()
		m.do(t, "rm", sentinelPath)
		waitClosed(t, "the sentinel's rm", sentinelLost)
		sentinel.Close()
		if isClosed(lost) {
			t.Fatalf("Lost closed by %s", change.name)
		}
	}
	m.do(t, "rm", path)
	waitClosed(t, "rm", lost)
}

// A loss before the first call of Lost is seen by that call.
func TestLostBeforeFirstCall(t *testing.T) {
	noWatcherAfter(t)
	path := tempLockPath(t)
	l, err := NewSimple(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !isClosed(l.Lost()) {
		t.Fatal("Lost of a lock whose file was removed before the call is open")
	}
}

// Cycles of lock, Lost and Close, as a program that watches short-lived
// locks makes them, reuse one inotify descriptor: no watch falls back to
// polling, and the process never has two inotify descriptors open.
func TestLostChurnKeepsOneNotifier(t *testing.T) {
	noWatcherAfter(t)
	path := tempLockPath(t)
	for i := range 2000 {
		l, err := NewSimple(path)
		if err != nil {
			t.Fatal(err)
		}
		if isClosed(l.Lost()) {
			t.Fatalf("cycle %d: Lost of a held lock is closed", i)
		}
		assertNotified(t, l)
		if fds, _ := inotifyWatches(t); fds != 1 {
			t.Fatalf("cycle %d: %d inotify descriptors open while one lock is watched", i, fds)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if fds, _ := inotifyWatches(t); fds > 1 {
			t.Fatalf("cycle %d: %d inotify descriptors open after Close", i, fds)
		}
	}
}

// A relative path names the file it named at the first call of Lost: a
// change of the current directory afterwards loses nothing, and a loss is
// still seen.
func TestLostRelativePathAfterChdir(t *testing.T) {
	noWatcherAfter(t)
	dir, other := testDir(t), testDir(t)
	t.Chdir(dir)
	l, err := NewSimple("x.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lost := l.Lost()
	t.Chdir(other)
	// The chmod makes the watcher look; the sentinel's loss, notified
	// after it, shows that the look is done.
	sentinel, err := NewSimple(filepath.Join(dir, "sentinel"))
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Close()
	sentinelLost := sentinel.Lost()
	if err := os.Chmod(filepath.Join(dir, "x.lock"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "sentinel")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "the sentinel's removal", sentinelLost)
	if isClosed(lost) {
		t.Fatal("Lost closed after a chdir and a chmod of the file")
	}
	if err := os.Remove(filepath.Join(dir, "x.lock")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "the removal", lost)
}

// goroutinesAtMost counts this process's goroutines once the count has
// come down to want, or after a few seconds: goroutines of earlier tests
// and a watcher told to stop end on their own time.
func goroutinesAtMost(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// descriptorsAtMost is goroutinesAtMost for descriptors.
func descriptorsAtMost(t *testing.T, want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := openDescriptors(t)
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// inotifyWatches returns the number of inotify descriptors this process
// has open and the watches they hold, from /proc/self/fdinfo.
func inotifyWatches(t *testing.T) (descriptors, watches int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target != "anon_inode:inotify" {
			continue
		}
		descriptors++
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		watches += strings.Count(string(info), "inotify wd:")
	}
	return descriptors, watches
}

// 10,000 watched locks use one inotify descriptor, with a watch each, and
// one goroutine; when they are all closed, the goroutine ends, and the
// descriptor is closed idleGrace later.
func TestLostTenThousandWatchesShareOneWatcher(t *testing.T) {
	noWatcherAfter(t)
	const n = 10_000
	if limit, err := os.ReadFile("/proc/sys/fs/inotify/max_user_watches"); err == nil {
		if max, _ := strconv.Atoi(strings.TrimSpace(string(limit))); max < 2*n {
			skipOrFail(t, "fs.inotify.max_user_watches is "+strconv.Itoa(max)+", too few for this test")
		}
	}
	dir := testDir(t)
	if got := watcherGoroutines(0); got != 0 {
		t.Fatalf("%d watchers run before the test", got)
	}
	descriptors, goroutines := openDescriptors(t), runtime.NumGoroutine()
	locks := make([]*SimpleLockFile, n)
	for i := range locks {
		l, err := NewSimple(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		locks[i] = l
	}
	defer func() {
		for _, l := range locks {
			l.Close()
		}
	}()
	if got := runtime.NumGoroutine(); got > goroutines || watcherGoroutines(0) != 0 {
		t.Fatalf("%d locks whose Lost was not called started %d goroutines", n, got-goroutines)
	}
	if got := openDescriptors(t); got != descriptors+n {
		t.Fatalf("%d locks whose Lost was not called use %d descriptors", n, got-descriptors)
	}
	for _, l := range locks {
		if isClosed(l.Lost()) {
			t.Fatal("Lost closed on a held lock")
		}
	}
	got, watchers := runtime.NumGoroutine(), watcherGoroutines(1)
	if got > goroutines+1 || watchers != 1 {
		t.Errorf("%d watched locks: %d goroutines more, %d of them watchers; want 1 watcher",
			n, got-goroutines, watchers)
	}
	if got := openDescriptors(t); got != descriptors+n+1 {
		t.Errorf("%d watched locks: %d descriptors besides theirs, want 1", n, got-descriptors-n)
	}
	if fds, watches := inotifyWatches(t); fds != 1 || watches != n {
		t.Errorf("%d watched locks: %d inotify descriptors holding %d watches, want 1 and %d",
			n, fds, watches, n)
	}
	t.Logf("%d watched locks: %d watcher goroutine and %d descriptor besides the locks'", n,
		watcherGoroutines(1), openDescriptors(t)-descriptors-n)
	for _, l := range locks {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !isClosed(l.Lost()) {
			t.Fatal("Lost open after Close")
		}
	}
	if got := goroutinesAtMost(goroutines); got > goroutines || watcherGoroutines(0) != 0 {
		t.Errorf("after Close of every watched lock: %d goroutines more than before", got-goroutines)
	}
	// The inotify descriptor is kept idleGrace for a next watch, then closed.
	if got := descriptorsAtMost(t, descriptors); got != descriptors {
		t.Errorf("%v after Close of every watched lock: %d descriptors more than before",
			idleGrace, got-descriptors)
	}
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	if watcher.n != nil {
		t.Errorf("the notifier is kept past idleGrace after Close of every watched lock")
	}
}

// A lock whose Lost is never called opens nothing and starts nothing,
// while it is held and after it is released.
func TestLostNeverCalledCostsNothing(t *testing.T) {
	endIdle()
	path := tempLockPath(t)
	descriptors, goroutines := openDescriptors(t), runtime.NumGoroutine()
	for range 100 {
		l, err := New(path)
		if err != nil {
			t.Fatal(err)
		}
		shared, err := NewShared(tempLockPath(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := openDescriptors(t); got != descriptors+2 {
			t.Fatalf("two held locks use %d descriptors", got-descriptors)
		}
		l.Close()
		shared.Close()
	}
	if got := runtime.NumGoroutine(); got > goroutines || watcherGoroutines(0) != 0 {
		t.Fatalf("locks whose Lost was never called started %d goroutines", got-goroutines)
	}
	if got := openDescriptors(t); got != descriptors {
		t.Fatalf("locks whose Lost was never called left %d descriptors", got-descriptors)
	}
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	if watcher.n != nil {
		t.Fatal("a watcher runs, though no lock's Lost was called")
	}
}

// Where the system does not notify (AIX, Solaris, illumos, and Linux once
// the user's inotify watches are used up), the watcher looks at the path
// every pollInterval: this test makes it poll on Linux.
func TestLostPolled(t *testing.T) {
	noWatcherAfter(t)
	watcher.mu.Lock()
	closeIdle()
	if watcher.n != nil {
		watcher.mu.Unlock()
		t.Fatal("a watcher runs already")
	}
	useNotifier(newPollNotifier())
	watcher.mu.Unlock()

	m := startMutator(t)
	dir := testDir(t)
	path := filepath.Join(dir, "lock")
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lost := l.Lost()
	watcher.mu.Lock()
	polled := len(watcher.polled)
	watcher.mu.Unlock()
	if polled != 1 {
		t.Fatalf("%d polled watches, want 1", polled)
	}
	m.do(t, "chmod", path)
	m.do(t, "link", path, filepath.Join(dir, "second-name"))
	time.Sleep(3 * pollInterval)
	if isClosed(lost) {
		t.Fatal("Lost closed by a chmod and a new link")
	}
	changed := m.do(t, "mv", path, filepath.Join(dir, "away"))
	t.Logf("polled: closed %v after the rename", waitClosed(t, "mv", lost).Sub(changed))
	l.Close()
	if got := watcherGoroutines(0); got != 0 {
		t.Fatalf("%d watchers run after the last watched lock closed", got)
	}
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	if _, ok := watcher.n.(*pollNotifier); !ok || watcher.looping || watcher.idle == nil {
		t.Fatalf("after the last lock closed: notifier %T, looping %v, kept idle %v",
			watcher.n, watcher.looping, watcher.idle != nil)
	}
}
