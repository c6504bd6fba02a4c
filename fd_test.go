package lockfile

import "testing"

func TestFdOfNoLock(t *testing.T) {
	var nilLock *SimpleLockFile
	for _, l := range []*SimpleLockFile{nilLock, {}, &(&LockFile{}).SimpleLockFile} {
		if got := l.Fd(); got != ^uintptr(0) {
			t.Errorf("Fd of %#v = %d, want ^uintptr(0)", l, got)
		}
	}
}

func TestFdOfNilLockFile(t *testing.T) {
	var l *LockFile
	if got := l.Fd(); got != ^uintptr(0) {
		t.Errorf("Fd of a nil LockFile = %d, want ^uintptr(0)", got)
	}
}
