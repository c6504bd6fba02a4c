//go:build unix || windows

package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

type acquired struct {
	lock *LockFile
	err  error
}

// acquireInBackground starts Acquire and returns where its result arrives.
func acquireInBackground(ctx context.Context, path string, opts ...Option) <-chan acquired {
	result := make(chan acquired, 1)
	go func() {
		l, err := Acquire(ctx, path, opts...)
		result <- acquired{l, err}
	}()
	return result
}

func TestAcquireFreeLockAtOnce(t *testing.T) {
	path := tempLockPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a free lock is taken even by a done context
	l, err := Acquire(ctx, path, WithContentTemplate("{pid};{hostname}"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, path), " "+strconv.Itoa(os.Getpid())+";"+hostname(t)+"\n"; got != want {
		t.Fatalf("file holds %q, want %q", got, want)
	}
	assertLocked(t, path, l.Content())
	l.Close()
	s, err := AcquireSimple(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != " "+l.Content()+"\n" {
		t.Fatalf("AcquireSimple changed the file to %q", got)
	}
	s.Close()
}

func TestAcquireDeadlineNamesHolder(t *testing.T) {
	path := tempLockPath(t)
	h, content := holdInHelper(t, path, "{pid};{hostname}")
	before := readFile(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The holder never lets go during this call: it can only return
	// because the deadline passed.
	_, err := Acquire(ctx, path)
	var lockErr *LockError
	if !errors.As(err, &lockErr) || !errors.Is(err, ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past its deadline: %v, want a *LockError wrapping ErrLocked and DeadlineExceeded", err)
	}
	if lockErr.Holder != content || lockErr.Path != path {
		t.Fatalf("LockError{Path: %q, Holder: %q}, want {%q, %q}", lockErr.Path, lockErr.Holder, path, content)
	}
	if got := readFile(t, path); got != before {
		t.Fatalf("a timed-out wait changed the file from %q to %q", before, got)
	}
	// Another process gives up the same way.
	if got := startHelper(t, "wait", path, "50ms").expect(t, "timeout"); got != content {
		t.Fatalf("waiting process read holder %q, want %q", got, content)
	}
	releaseAndOutwait(t, path, func() { h.finish(t) })
}

// releaseAndOutwait runs release, which lets go of a lock that an abandoned
// wait in this process was waiting for, and returns once that waiter has
// let go of the file too: Windows cannot remove a file that is still open.
func releaseAndOutwait(t *testing.T, path string, release func()) {
	t.Helper()
	w := waiterOn(path)
	release()
	if w != nil {
		<-w.done
	}
}

func TestAcquireCancel(t *testing.T) {
	path := tempLockPath(t)
	holder, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAndOutwait(t, path, func() { holder.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	result := acquireInBackground(ctx, path)
	cancel()
	r := <-result
	if !errors.Is(r.err, context.Canceled) || !errors.Is(r.err, ErrLocked) {
		t.Fatalf("cancelled Acquire: %v, want ErrLocked and context.Canceled", r.err)
	}
	_, err = AcquireSimple(ctx, path)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("AcquireSimple with a cancelled context on a held lock: %v", err)
	}
}

func TestAcquireTakesOverFromHolder(t *testing.T) {
	for _, end := range []string{"close", "kill"} {
		t.Run(end, func(t *testing.T) {
			path := tempLockPath(t)
			h, _ := holdInHelper(t, path, "{pid} with a long tail")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			result := acquireInBackground(ctx, path)
			if end == "kill" {
				h.kill(t)
			} else {
				h.finish(t)
			}
			r := <-result
			if r.err != nil {
				t.Fatalf("Acquire after the holder ended: %v", r.err)
			}
			defer r.lock.Close()
			if got, want := readFile(t, path), " "+strconv.Itoa(os.Getpid())+"\n"; got != want {
				t.Fatalf("file holds %q, want %q", got, want)
			}
			assertLocked(t, path, r.lock.Content())
		})
	}
}

func TestAcquireWithoutDeadlineWaits(t *testing.T) {
	path := tempLockPath(t)
	holder, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	result := acquireInBackground(context.Background(), path)
	holder.Close()
	r := <-result
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.lock.Close()
}

func waiterOn(path string) *waiter {
	key, _ := filepath.Abs(path)
	waiters.Lock()
	defer waiters.Unlock()
	return waiters.byPath[key]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// Abandoned waits must not pile up: a thousand calls that give up after a
// millisecond leave at most one waiter (one thread, one descriptor) per
// lock file, and it is gone once the lock is released.
func TestAbandonedWaitsAreBounded(t *testing.T) {
	path := tempLockPath(t)
	fdsWithoutHelper := openDescriptors(t)
	h, content := holdInHelper(t, path, "{pid}")
	runtime.GC()
	fdsBefore, threadsBefore, goroutinesBefore := openDescriptors(t), osThreads(t), runtime.NumGoroutine()
	for range 1000 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := AcquireSimple(ctx, path)
		cancel()
		var lockErr *LockError
		if !errors.As(err, &lockErr) || !errors.Is(err, context.DeadlineExceeded) || lockErr.Holder != content {
			t.Fatalf("abandoned wait: %v", err)
		}
	}
	// A context's timer runs its cancel in a goroutine of its own, which
	// may not have ended yet; only one goroutine may stay.
	for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > goroutinesBefore+1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	fdsWaiting, threadsWaiting, goroutinesWaiting := openDescriptors(t), osThreads(t), runtime.NumGoroutine()
	blockedWaiting := threadsBlockedInLock(t)
	t.Logf("after 1000 abandoned waits: descriptors %d -> %d, OS threads %d -> %d (%d blocked in the lock call), goroutines %d -> %d",
		fdsBefore, fdsWaiting, threadsBefore, threadsWaiting, blockedWaiting, goroutinesBefore, goroutinesWaiting)
	if fdsWaiting > fdsBefore+1 || goroutinesWaiting > goroutinesBefore+1 || blockedWaiting > 1 {
		t.Fatalf("abandoned waits left %d descriptors, %d goroutines and %d threads in the kernel, want at most one each",
			fdsWaiting-fdsBefore, goroutinesWaiting-goroutinesBefore, blockedWaiting)
	}
	// The Go runtime starts threads as it sees fit, so the total only
	// gets a loose bound; the threads that matter are the blocked ones.
	if threadsWaiting > threadsBefore+3 {
		t.Fatalf("abandoned waits left %d more OS threads", threadsWaiting-threadsBefore)
	}

	h.finish(t)
	waitUntil(t, "the waiter to end", func() bool {
		return waiterOn(path) == nil && runtime.NumGoroutine() == goroutinesBefore &&
			openDescriptors(t) <= fdsWithoutHelper
	})
	blockedAfter := threadsBlockedInLock(t)
	t.Logf("after release: descriptors %d, OS threads %d (%d blocked in the lock call), goroutines %d",
		openDescriptors(t), osThreads(t), blockedAfter, runtime.NumGoroutine())
	if blockedAfter != 0 {
		t.Fatalf("%d threads still blocked in the lock call after release", blockedAfter)
	}
	assertFree(t, path)
}

// Abandoned waits on many lock files must not use up the process's
// threads. With the bound lowered to three: a wait on a fourth file fails
// at once with errTooManyWaits, naming the holder, though its deadline is
// far; a wait on a file already waited for still joins its waiter; once a
// waiter ends, a wait on another file may begin.
func TestWaitsOnManyFilesAreBounded(t *testing.T) {
	defer func(bound int) { maxWaiters = bound }(maxWaiters)
	maxWaiters = 3
	dir := testDir(t)
	var paths []string
	var holders []*LockFile
	for i := range 4 {
		path := filepath.Join(dir, strconv.Itoa(i))
		l, err := New(path, WithContentTemplate("holder "+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		paths, holders = append(paths, path), append(holders, l)
	}
	defer func() {
		for i, l := range holders {
			releaseAndOutwait(t, paths[i], func() { l.Close() })
		}
	}()
	// A wait given up before its waiter's call began leaves no waiter.
	abandon := func(path string) error {
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		go func() {
			_, err := AcquireSimple(ctx, path)
			result <- err
		}()
		waitUntil(t, "the waiter on "+path+" to block", func() bool {
			w := waiterOn(path)
			waiters.Lock()
			defer waiters.Unlock()
			return w != nil && w.blocking
		})
		cancel()
		return <-result
	}
	for _, path := range paths[:3] {
		if err := abandon(path); !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned wait on %s: %v", path, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := AcquireSimple(ctx, paths[3])
	var lockErr *LockError
	if !errors.Is(err, errTooManyWaits) || !errors.Is(err, ErrLocked) || errors.Is(err, context.DeadlineExceeded) ||
		!errors.As(err, &lockErr) || lockErr.Holder != holders[3].Content() || lockErr.Path != paths[3] {
		t.Fatalf("a wait on a fourth file: %v, want a *LockError naming %q with errTooManyWaits at once", err, holders[3].Content())
	}
	if err := abandon(paths[0]); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second abandoned wait on %s: %v, want it to join the waiter there", paths[0], err)
	}
	if blocked := threadsBlockedInLock(t); blocked > 3 {
		t.Fatalf("%d threads blocked in the lock call, want at most 3", blocked)
	}
	releaseAndOutwait(t, paths[0], func() { holders[0].Close() })
	if err := abandon(paths[3]); !errors.Is(err, context.Canceled) {
		t.Fatalf("a wait on a fourth file once a waiter ended: %v, want it to wait", err)
	}
}

// runAbandonAndSpin waits for the lock on path until a line comes on stdin,
// gives up, reports "gave-up" and then keeps its only P busy for ever. Run
// with GOMAXPROCS=1 and GODEBUG=asyncpreemptoff=1, it never runs another
// goroutine again, its waiter's included.
func runAbandonAndSpin(path string) int {
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := AcquireSimple(ctx, path)
		result <- err
	}()
	bufio.NewReader(os.Stdin).ReadString('\n')
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		fmt.Printf("error %v\n", err)
		return 1
	}
	fmt.Println("gave-up")
	// A loop that makes no call has no point at which the scheduler
	// could take the P back.
	for spins := 0; ; spins++ {
	}
}
