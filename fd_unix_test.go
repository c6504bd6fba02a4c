//go:build unix

package lockfile

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Fd is the locked descriptor itself: it names the lock file, is closed on
// exec, and closing it releases the lock, for other processes too.
func TestFdIsTheLockedDescriptor(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithContentTemplate("holder-1"))
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
	if verb, rest := tryInHelper(t, path); verb != "locked" || rest != "holder-1" {
		t.Fatalf("another process, while the lock is held: %s %s", verb, rest)
	}
	// Closed by putting another file in its place, which leaves no moment
	// in which a file opened elsewhere in this process could take its
	// number, for Close to close.
	devNull, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(devNull)
	if err := unix.Dup2(devNull, fd); err != nil {
		t.Fatal(err)
	}
	if verb, rest := tryInHelper(t, path); verb != "ok" {
		t.Fatalf("another process, after Fd was closed: %s %s; want the lock taken", verb, rest)
	}
	l.Close() // of /dev/null now; what it says of that does not matter
	if got := l.Fd(); got != ^uintptr(0) {
		t.Fatalf("Fd after Close = %d, want ^uintptr(0)", got)
	}
}
