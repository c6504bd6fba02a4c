//go:build unix

package lockfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests hold on every backend. Under POSIX record locks
// (-tags lockfile_fcntl, AIX, Solaris) the kernel would grant the second
// lock object and drop the lock at the first close of any descriptor of
// the file; they fail there without the in-process table.

// Every kind of attempt that a holding process can make on its own lock
// file, a thousand times over, leaves the lock held against other
// processes and leaves no descriptor behind but the one waiter's.
func TestAttemptsInTheHoldingProcessKeepTheLock(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithContentTemplate("{pid};owner"))
	if err != nil {
		t.Fatal(err)
	}
	holder := l.Content()
	before := openDescriptors(t)
	hook := WithOnLock(func(f *os.File) error { t.Error("hook ran for a refused attempt"); return nil })
	for i := range 1000 {
		if _, err := NewSimple(path); !errors.Is(err, ErrLocked) {
			t.Fatalf("attempt %d: NewSimple = %v, want ErrLocked", i, err)
		}
		if _, err := New(path); !errors.Is(err, ErrLocked) {
			t.Fatalf("attempt %d: New = %v, want ErrLocked", i, err)
		}
		if _, err := NewSimple(path, hook); !errors.Is(err, ErrLocked) {
			t.Fatalf("attempt %d: NewSimple with a hook = %v, want ErrLocked", i, err)
		}
		if st, err := Inspect(path); err != nil || !st.Held || st.Shared || st.Holder != holder {
			t.Fatalf("attempt %d: Holder = %+v, %v; want held by %q", i, st, err, holder)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := AcquireSimple(ctx, path)
		cancel()
		var lockErr *LockError
		if !errors.As(err, &lockErr) || !errors.Is(err, context.DeadlineExceeded) || lockErr.Holder != holder {
			t.Fatalf("attempt %d: abandoned AcquireSimple = %v, want a deadline naming %q", i, err, holder)
		}
		if i%250 == 0 {
			if verb, got := tryInHelper(t, path); verb != "locked" || got != holder {
				t.Fatalf("after %d attempts another process got %q %q, want locked by %q", i, verb, got, holder)
			}
		}
	}
	if verb, got := tryInHelper(t, path); verb != "locked" || got != holder {
		t.Fatalf("another process got %q %q, want locked by %q", verb, got, holder)
	}
	if after := openDescriptors(t); after > before+1 {
		t.Fatalf("%d descriptors open after the attempts, %d before: at most the one waiter's may stay", after, before)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if verb, _ := tryInHelper(t, path); verb != "ok" {
		t.Fatalf("another process got %q after Close, want ok", verb)
	}
}

// A hook's file is not the lock's: using it, and the end of the hook,
// leave the lock held.
func TestHookFileLeavesTheLockHeld(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithOnLock(func(f *os.File) error {
		_, err := f.WriteAt([]byte("#"), 20)
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if verb, _ := tryInHelper(t, path); verb != "locked" {
		t.Fatalf("another process got %q after the hook ran, want locked", verb)
	}
}

// An Acquire in the holding process gets the lock when the other lock
// object closes, not before: it must not be granted the lock the process
// holds already.
func TestAcquireInTheHoldingProcessWaitsForClose(t *testing.T) {
	path := tempLockPath(t)
	first, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	var closed sync.WaitGroup
	closed.Add(1)
	var closedAt, lockedAt time.Time
	done := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), path, WithContentTemplate("{pid};second"))
		lockedAt = time.Now()
		closed.Wait()
		if err == nil {
			l.Close()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Acquire returned while the lock was held: %v", err)
	default:
	}
	closedAt = time.Now()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Done()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lockedAt.Before(closedAt) {
		t.Fatalf("Acquire held the lock at %v, before the holder closed at %v", lockedAt, closedAt)
	}
}

// Three processes, each taking the lock 300 times and adding one to a
// counter under it, count exactly.
func TestThreeProcessesCountExactly(t *testing.T) {
	dir := testDir(t)
	lockPath := filepath.Join(dir, "lock")
	counterPath := filepath.Join(dir, "counter")
	writeFile(t, counterPath, "0")
	const processes, rounds = 3, 300
	var helpers []*helper
	for i := range processes {
		how := []string{"retry", "wait"}[i%2]
		helpers = append(helpers, startHelper(t, "count", lockPath, counterPath, strconv.Itoa(rounds), how))
	}
	for _, h := range helpers {
		h.expect(t, "done")
		h.finish(t)
	}
	if got, want := readFile(t, counterPath), strconv.Itoa(processes*rounds); got != want {
		t.Fatalf("counter = %s, want %s: two processes held the lock at once", got, want)
	}
}

// A hook that closes the file it was given drops a lock that belongs to
// the process; the call then fails and releases what is left. Where the
// lock belongs to the open file, that close drops nothing.
func TestHookThatClosesItsFile(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithOnLock(func(f *os.File) error { return f.Close() }))
	if recordLocks {
		if err == nil || !strings.Contains(err.Error(), "hook closed its file") {
			t.Fatalf("New with a hook that closed its file = %v, want it to say the hook closed its file", err)
		}
		assertFree(t, path)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if verb, _ := tryInHelper(t, path); verb != "locked" {
		t.Fatalf("another process got %q, want locked", verb)
	}
}
