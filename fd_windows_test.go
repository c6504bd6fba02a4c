package lockfile

import (
	"errors"
	"testing"

	"golang.org/x/sys/windows"
)

// Fd is the locked handle itself: it is a disk file, and unlocking it
// releases the lock.
func TestFdIsTheLockedHandle(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := windows.Handle(l.Fd())
	if again := windows.Handle(l.Fd()); again != h {
		t.Fatalf("Fd gave %d, then %d", h, again)
	}
	if fileType, err := windows.GetFileType(h); err != nil || fileType != windows.FILE_TYPE_DISK {
		t.Fatalf("GetFileType of Fd: %d, %v; want a disk file", fileType, err)
	}
	if _, err := NewSimple(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("NewSimple while locked: %v, want ErrLocked", err)
	}
	if err := windows.UnlockFileEx(h, 0, lockLength, 0, &windows.Overlapped{Offset: lockOffset}); err != nil {
		t.Fatal(err)
	}
	other, err := NewSimple(path)
	if err != nil {
		t.Fatalf("NewSimple after unlocking Fd: %v", err)
	}
	other.Close()
	// Relocked, so that Close has a lock to release: unlocking a range
	// that is not locked is an error on Windows.
	if err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY,
		0, lockLength, 0, &windows.Overlapped{Offset: lockOffset}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Fd(); got != ^uintptr(0) {
		t.Fatalf("Fd after Close = %d, want ^uintptr(0)", got)
	}
}
