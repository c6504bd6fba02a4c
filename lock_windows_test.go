package lockfile

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// openDescriptors counts this process's open handles. Wine keeps Unix
// descriptors open behind closed handles, so /proc would not tell.
func openDescriptors(t *testing.T) int {
	t.Helper()
	var count uint32
	proc := windows.NewLazySystemDLL("kernel32.dll").NewProc("GetProcessHandleCount")
	if ok, _, err := proc.Call(uintptr(windows.CurrentProcess()), uintptr(unsafe.Pointer(&count))); ok == 0 {
		t.Fatalf("GetProcessHandleCount: %v", err)
	}
	return int(count)
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

// osThreads is not counted on Windows; Wine would report its own threads.
func osThreads(t *testing.T) int { return 0 }
