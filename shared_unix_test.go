//go:build unix

package lockfile

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Shared locks and flock(1) exclude each other both ways: -s shares with
// them, -x is refused by them and refuses them.
func TestSharedInteropFlockCommand(t *testing.T) {
	flock := flockCommand(t)
	path := tempLockPath(t)
	l, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	const conflict = 75
	run := func(mode string) error {
		return exec.Command(flock, "--nonblock", mode, "--conflict-exit-code", strconv.Itoa(conflict), path, "true").Run()
	}
	if err := run("--shared"); err != nil {
		t.Fatalf("flock -s beside a shared lock: %v", err)
	}
	if exitErr, ok := run("--exclusive").(*exec.ExitError); !ok || exitErr.ExitCode() != conflict {
		t.Fatalf("flock -x beside a shared lock was not refused")
	}
	l.Close()

	for _, tt := range []struct {
		mode         string
		sharedOK     bool
		newRefusedAs func(*LockError) bool
	}{
		{"--shared", true, func(e *LockError) bool { return e.Shared }},
		{"--exclusive", false, func(e *LockError) bool { return !e.Shared }},
	} {
		h := startProcess(t, exec.Command(flock, tt.mode, path, "sh", "-c", "echo locked; cat"))
		h.expect(t, "locked")
		s, err := NewShared(path)
		if tt.sharedOK != (err == nil) {
			t.Fatalf("NewShared beside flock %s: %v", tt.mode, err)
		}
		if err == nil {
			s.Close()
		}
		var lockErr *LockError
		if _, err := New(path); !errors.As(err, &lockErr) || !tt.newRefusedAs(lockErr) {
			t.Fatalf("New beside flock %s = %v", tt.mode, err)
		}
		h.finish(t)
	}
}

// zc.lockfile's exclusive lock and shared locks exclude each other.
func TestSharedInteropZC(t *testing.T) {
	path := tempLockPath(t)
	zc := startZC(t, "hold", path, "{pid};zc")
	zc.expect(t, "locked")
	var lockErr *LockError
	if _, err := NewShared(path); !errors.As(err, &lockErr) || lockErr.Shared {
		t.Fatalf("NewShared while zc.lockfile holds the lock = %v, want refused", err)
	}
	zc.finish(t)
	l, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	startZC(t, "try", path, "{pid}").expect(t, "locked") // refused by the shared lock
}

// Shared holders of one process that overlap for ever leave no descriptor
// behind them: where locks belong to the process, a new shared holder
// joins the lock without opening the file.
func TestOverlappingSharedHoldersLeaveNoDescriptors(t *testing.T) {
	path := tempLockPath(t)
	first, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	before := openDescriptors(t)
	prev := first
	for i := range 1000 {
		l, err := NewShared(path, WithOnLock(func(*os.File) error { return nil }))
		if err != nil {
			t.Fatalf("shared lock %d: %v", i, err)
		}
		prev.Close() // the holders overlap: one always holds
		prev = l
	}
	if after := openDescriptors(t); after > before+1 {
		t.Fatalf("%d descriptors open after 1000 overlapping shared holders, %d before", after, before)
	}
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process reported %q, want shared", verb)
	}
	prev.Close()
	assertFree(t, path)
}

// A wait for the exclusive lock that every caller gave up on keeps no one
// in this process from sharing the lock with the other process's shared
// holder, and the shared locks leave no descriptor behind.
func TestSharedAttemptsBesideAnAbandonedWait(t *testing.T) {
	path := tempLockPath(t)
	h := startHelper(t, "shared", path)
	h.expect(t, "locked")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := AcquireSimple(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcquireSimple beside a shared holder = %v, want a deadline", err)
	}
	cancel()
	before := openDescriptors(t)
	for i := range 500 {
		l, err := NewShared(path)
		if err != nil {
			t.Fatalf("NewShared %d beside another process's shared lock: %v", i, err)
		}
		l.Close()
	}
	if after := openDescriptors(t); after > before {
		t.Fatalf("%d descriptors open after 500 shared attempts, %d before", after, before)
	}
	h.finish(t)
}

// A shared lock opens the file for reading only, so it locks a directory
// too; an exclusive one cannot open a directory, and says so.
func TestSharedLockOnADirectory(t *testing.T) {
	dir := t.TempDir()
	first, err := NewShared(dir)
	if err != nil {
		t.Fatalf("NewShared on a directory: %v", err)
	}
	second, err := NewShared(dir)
	if err != nil {
		t.Fatalf("a second NewShared on the directory: %v", err)
	}
	second.Close()
	first.Close()
	if _, err := NewSimple(dir); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("NewSimple on a directory = %v, want an open error", err)
	}
}
