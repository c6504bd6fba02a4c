//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// A shared holder's hook that closes its file drops the process's record
// lock under every shared holder of the process. The table must not keep
// the lock as held: the next shared lock takes a kernel lock of its own, or
// is refused while another process holds the lock exclusively, and the
// holders that lost the lock learn it at Close.
func TestSharedHookThatClosesItsFileLosesTheLockForAll(t *testing.T) {
	path := tempLockPath(t)
	first, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	closer := WithOnLock(func(f *os.File) error { return f.Close() })
	if _, err := NewShared(path, closer); err == nil || !strings.Contains(err.Error(), "hook closed its file") {
		t.Fatalf("NewShared with a hook that closed its file = %v, want it to say so", err)
	}
	// The kernel lock is gone: a writer in another process gets it, and a
	// shared lock here is refused, naming that writer.
	h, content := holdInHelper(t, path, "{pid};writer")
	var lockErr *LockError
	if _, err := NewShared(path); !errors.As(err, &lockErr) || lockErr.Shared || lockErr.Holder != content {
		t.Fatalf("NewShared while another process holds the lock = %v, want refused by %q", err, content)
	}
	h.finish(t)
	// Free again: a shared lock here is a kernel lock that excludes the
	// writer of another process.
	second, err := NewShared(path)
	if err != nil {
		t.Fatal(err)
	}
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process beside the new shared lock reported %q, want shared", verb)
	}
	if err := first.Close(); !errors.Is(err, errLockLost) {
		t.Fatalf("Close of a shared holder whose lock was dropped = %v, want errLockLost", err)
	}
	// The lost holder's release neither unlocked nor closed the new lock.
	if verb, _ := tryInHelper(t, path); verb != "shared" {
		t.Fatalf("New in another process after the lost holder's Close reported %q, want shared", verb)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	assertFree(t, path)
}
