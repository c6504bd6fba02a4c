//go:build unix || windows

package lockfile

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Shared locks are held together, in this process and in others, and
// exclusive attempts are refused with a LockError that says so.
func TestSharedLocksAreHeldTogether(t *testing.T) {
	path := tempLockPath(t)
	var mine []*SimpleLockFile
	for range 3 {
		l, err := NewShared(path)
		if err != nil {
			t.Fatalf("shared lock %d: %v", len(mine)+1, err)
		}
		mine = append(mine, l)
	}
	var others []*helper
	for range 3 {
		h := startHelper(t, "shared", path)
		h.expect(t, "locked")
		others = append(others, h)
	}
	var lockErr *LockError
	if _, err := NewSimple(path); !errors.As(err, &lockErr) || !lockErr.Shared || !errors.Is(err, ErrLocked) {
		t.Fatalf("NewSimple under shared holders = %v, want a LockError with Shared set", err)
	}
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process under shared holders reported %q, want shared", verb)
	}
	if st, err := Inspect(path); err != nil || !st.Held || !st.Shared {
		t.Fatalf("Holder under shared holders = %+v, %v; want held, shared", st, err)
	}
	for _, l := range mine {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process while other processes share the lock reported %q, want shared", verb)
	}
	for _, h := range others {
		h.finish(t)
	}
	assertFree(t, path)
}

// An exclusive holder refuses shared locks, and is named.
func TestExclusiveHolderRefusesShared(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithContentTemplate("{pid};writer"))
	if err != nil {
		t.Fatal(err)
	}
	var lockErr *LockError
	if _, err := NewShared(path); !errors.As(err, &lockErr) || lockErr.Shared || lockErr.Holder != l.Content() {
		t.Fatalf("NewShared under an exclusive holder = %v, want a LockError naming %q", err, l.Content())
	}
	h := startHelper(t, "shared", path)
	if verb, holder := h.next(t); verb != "refused" || holder != l.Content() {
		t.Fatalf("NewShared in another process = %q %q, want refused by %q", verb, holder, l.Content())
	}
	h.finish(t)
	if st, err := Inspect(path); err != nil || !st.Held || st.Shared || st.Holder != l.Content() {
		t.Fatalf("Holder = %+v, %v; want held by %q", st, err, l.Content())
	}
	l.Close()
	s, err := NewShared(path)
	if err != nil {
		t.Fatalf("NewShared after Close: %v", err)
	}
	s.Close()
}

// A shared lock writes nothing: a template is refused before anything is
// touched, and a hook's file is open for reading only.
func TestSharedLockWritesNothing(t *testing.T) {
	path := tempLockPath(t)
	var optErr *OptionError
	if _, err := NewShared(path, WithContentTemplate("{pid}")); !errors.As(err, &optErr) {
		t.Fatalf("NewShared with a template = %v, want an OptionError", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused template created the file: %v", err)
	}
	writeFile(t, path, " 42;earlier\n")
	var read string
	l, err := NewShared(path, WithOnLock(func(f *os.File) error {
		buf := make([]byte, 64)
		n, _ := f.ReadAt(buf, 0)
		read = string(buf[:n])
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Error("a shared lock's hook wrote into the file")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if read != " 42;earlier\n" {
		t.Fatalf("hook read %q", read)
	}
	if got := readFile(t, path); got != " 42;earlier\n" {
		t.Fatalf("file holds %q after a shared lock", got)
	}
}

// Shared and exclusive waiters of one process wait together: when the
// exclusive holder lets go, every waiter gets the lock in turn, and no
// exclusive holder is ever inside together with anyone else.
func TestSharedAndExclusiveWaitersTogether(t *testing.T) {
	path := tempLockPath(t)
	first, err := NewSimple(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var readers, writers atomic.Int32
	var wg sync.WaitGroup
	const rounds = 20
	for i := range 6 {
		wg.Go(func() {
			for range rounds {
				var l *SimpleLockFile
				var err error
				if i%3 == 0 {
					l, err = AcquireSimple(ctx, path)
				} else {
					l, err = AcquireShared(ctx, path)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if writers.Add(1) != 1 || readers.Load() != 0 {
						t.Error("an exclusive holder was inside with another holder")
					}
					time.Sleep(100 * time.Microsecond)
					writers.Add(-1)
				} else {
					readers.Add(1)
					if writers.Load() != 0 {
						t.Error("a shared holder was inside with an exclusive holder")
					}
					time.Sleep(100 * time.Microsecond)
					readers.Add(-1)
				}
				l.Close()
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	first.Close()
	wg.Wait()
}

// AcquireShared waits for an exclusive holder in another process and gets
// the lock when it lets go; an abandoned shared wait names the holder.
func TestAcquireSharedWaitsForExclusiveHolder(t *testing.T) {
	path := tempLockPath(t)
	h, holder := holdInHelper(t, path, "{pid};writer")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := AcquireShared(ctx, path)
	cancel()
	var lockErr *LockError
	if !errors.As(err, &lockErr) || !errors.Is(err, context.DeadlineExceeded) || lockErr.Holder != holder {
		t.Fatalf("AcquireShared that gave up = %v, want a deadline naming %q", err, holder)
	}
	done := make(chan error, 1)
	go func() {
		l, err := AcquireShared(context.Background(), path)
		if err == nil {
			l.Close()
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	h.finish(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
