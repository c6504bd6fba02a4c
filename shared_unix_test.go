//go:build unix

package lockfile

import (
	"errors"
	"os/exec"
	"strconv"
	"testing"
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
