package main

import (
	"strings"
	"testing"
	"time"
)

// COMMAND has exactly one descriptor of the lock file: fcntl(2) locks,
// where they are the only kind, are dropped when any descriptor of the
// file is closed, at exec too. The same holds after a wait, in which a
// waiter's descriptor may be the one that took the lock.
func TestCommandHasOneDescriptorOfTheLockFile(t *testing.T) {
	const script = `for fd in /proc/$$/fd/*; do readlink "$fd"; done`
	path := lockPath(t)
	count := func(r result) int {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("status %d, stderr %q", r.code, r.stderr)
		}
		return strings.Count(r.stdout, path+"\n")
	}
	if n := count(runLockfile(t, "run", path, "sh", "-c", script)); n != 1 {
		t.Fatalf("COMMAND has %d descriptors of the lock file, want 1", n)
	}
	l := hold(t, path, "holder-1")
	p := startLockfile(t, "run", "-v", "-w", "20", path, "sh", "-c", script)
	p.stderrHas(t, "waiting up to 20s")
	time.Sleep(100 * time.Millisecond)
	l.Close()
	if n := count(p.wait(t)); n != 1 {
		t.Fatalf("after a wait, COMMAND has %d descriptors of the lock file, want 1", n)
	}
}
