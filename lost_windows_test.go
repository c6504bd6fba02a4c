package lockfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/windows"
)

// The ways of losing a lock on Unix cannot happen on Windows: a held lock
// file, opened without FILE_SHARE_DELETE, cannot be removed, renamed away
// or replaced by a rename, whether the holder is this process or another.
// Lost stays open, and Close closes it.
func TestLostCannotBeLostOnWindows(t *testing.T) {
	noWatcherAfter(t)
	dir := testDir(t)
	path := filepath.Join(dir, "lock")
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	lost := l.Lost()
	other := filepath.Join(dir, "other")
	writeFile(t, other, "")
	if err := os.Remove(path); !errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
		t.Fatalf("removing a held lock file: %v, want a sharing violation", err)
	}
	for _, rename := range [][2]string{{path, filepath.Join(dir, "away")}, {other, path}} {
		if err := os.Rename(rename[0], rename[1]); err == nil {
			t.Fatalf("renaming %s to %s succeeded while %s was held", rename[0], rename[1], path)
		}
	}
	if isClosed(lost) {
		t.Fatal("Lost closed while the lock was held")
	}
	assertLocked(t, path, l.Content())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(lost) {
		t.Fatal("Lost open after Close")
	}

	h, _ := holdInHelper(t, path, "{pid}")
	if err := os.Rename(path, filepath.Join(dir, "away")); err == nil {
		t.Fatal("renaming a lock file held by another process succeeded")
	}
	if err := os.Rename(other, path); err == nil {
		t.Fatal("renaming a file over a lock file held by another process succeeded")
	}
	h.finish(t)
}
