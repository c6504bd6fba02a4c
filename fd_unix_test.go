//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package lockfile

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// Fd is the locked descriptor itself: it names the lock file, is closed on
// exec, and unlocking it releases the lock.
func TestFdIsTheLockedDescriptor(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fd := int(l.Fd())
	if again := int(l.Fd()); again != fd {
		t.Fatalf("Fd gave %d, then %d", fd, again)
	}
	var viaFd, viaPath unix.Stat_t
	if err := unix.Fstat(fd, &viaFd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(path, &viaPath); err != nil {
		t.Fatal(err)
	}
	if viaFd.Dev != viaPath.Dev || viaFd.Ino != viaPath.Ino {
		t.Fatalf("Fd %d is not a descriptor of %s", fd, path)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("F_GETFD of Fd: %#x, %v; want FD_CLOEXEC set", flags, err)
	}
	if _, err := NewSimple(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("NewSimple while locked: %v, want ErrLocked", err)
	}
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	other, err := NewSimple(path)
	if err != nil {
		t.Fatalf("NewSimple after unlocking Fd: %v", err)
	}
	other.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Fd(); got != ^uintptr(0) {
		t.Fatalf("Fd after Close = %d, want ^uintptr(0)", got)
	}
}
