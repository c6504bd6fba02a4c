package lockfile

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/windows"
)

// openDescriptors counts this process's open handles to disk files by
// asking about each possible handle value. Wine answers GetProcessHandleCount
// with 0, /proc under Wine shows Wine's own descriptors, and counting only
// disk files leaves out the thread handles the Go runtime adds as it goes.
func openDescriptors(t *testing.T) int {
	t.Helper()
	n := 0
	for h := windows.Handle(4); h < 1<<14; h += 4 { // handle values are multiples of 4
		if fileType, _ := windows.GetFileType(h); fileType == windows.FILE_TYPE_DISK {
			n++
		}
	}
	return n
}

// The lock is byte 0, length 1, as zc.lockfile's msvcrt.locking takes it:
// another handle is refused byte 0 but may lock byte 1.
func TestLockCoversByteZeroOnly(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lockRange := func(offset uint32) error {
		return windows.LockFileEx(windows.Handle(other.Fd()),
			windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0,
			&windows.Overlapped{Offset: offset})
	}
	if err := lockRange(0); !errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		t.Fatalf("LockFileEx on byte 0 while held: %v, want ERROR_LOCK_VIOLATION", err)
	}
	if err := lockRange(1); err != nil {
		t.Fatalf("LockFileEx on byte 1 while byte 0 is held: %v", err)
	}
	windows.UnlockFileEx(windows.Handle(other.Fd()), 0, 1, 0, &windows.Overlapped{Offset: 1})
}

// Go opens files without FILE_SHARE_DELETE, so while anyone has the lock
// file open, whether holding or waiting, it cannot be removed: the race in
// which a waiter locks a removed file next to a new one cannot start here.
func TestOpenLockFileCannotBeRemoved(t *testing.T) {
	path := tempLockPath(t)
	h, content := holdInHelper(t, path, "{pid}")
	if err := os.Remove(path); !errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
		t.Fatalf("removing a held lock file: %v, want a sharing violation", err)
	}
	assertLocked(t, path, content)
	h.finish(t)
	assertFree(t, path)
}
