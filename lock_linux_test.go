package lockfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// onDoomedThread runs fn on an OS thread of its own that exits afterwards,
// so that fn may change per-thread kernel state (seccomp filters, fsuid)
// without that change reaching any other goroutine.
func onDoomedThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fn()
	}()
	<-done
}

// failSyscall installs a seccomp filter on the calling thread that makes
// syscall nr fail with errno.
func failSyscall(t *testing.T, nr uintptr, errno unix.Errno) error {
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(nr)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(errno)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0)
}

// newWhileFailing runs New on a thread whose system call nr fails with
// errno, closes the lock if it was taken, and returns New's error.
func newWhileFailing(t *testing.T, nr uintptr, errno unix.Errno, path string, opts ...Option) error {
	t.Helper()
	var err, filterErr error
	onDoomedThread(func() {
		if filterErr = failSyscall(t, nr, errno); filterErr == nil {
			var l *LockFile
			if l, err = New(path, opts...); err == nil {
				l.Close()
			}
		}
	})
	if filterErr != nil {
		skipOrFail(t, "cannot install a seccomp filter: "+filterErr.Error())
	}
	return err
}

// A file system that cannot lock (NFS without a lock manager, some FUSE
// mounts) answers flock with ENOLCK, ENOTSUP or ENOSYS. A seccomp filter
// makes the kernel give those answers here.
func TestFileSystemThatCannotLock(t *testing.T) {
	for _, errno := range []unix.Errno{unix.ENOLCK, unix.ENOTSUP, unix.ENOSYS} {
		t.Run(errno.Error(), func(t *testing.T) {
			path := tempLockPath(t)
			err := newWhileFailing(t, lockSyscall(), errno, path)
			if !errors.Is(err, errors.ErrUnsupported) || !errors.Is(err, errno) || errors.Is(err, ErrLocked) {
				t.Fatalf("New on a file system answering %v: %v, want errors.ErrUnsupported wrapping it", errno, err)
			}
			if !strings.Contains(err.Error(), "not supported") || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not say locking is unsupported for %s", err, path)
			}
			if got := readFile(t, path); got != "" {
				t.Fatalf("content %q written without a lock", got)
			}
			assertFree(t, path)
		})
	}
}

// Linux's fs.protected_regular refuses O_CREAT on another user's file in a
// sticky world-writable directory such as /tmp, even to root. A lock file
// shared between users must still open there.
func TestProtectedRegularSharedDirectory(t *testing.T) {
	const sysctl = "/proc/sys/fs/protected_regular"
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to give the lock file to another user")
	}
	old, err := os.ReadFile(sysctl)
	if err != nil {
		skipOrFail(t, err.Error())
	}
	if err := os.WriteFile(sysctl, []byte("1"), 0); err != nil {
		skipOrFail(t, "cannot set fs.protected_regular: "+err.Error())
	}
	t.Cleanup(func() { os.WriteFile(sysctl, old, 0) })

	dir := testDir(t)
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shared.lock")
	if err := os.WriteFile(path, []byte(" 4242;other-user\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// Without this the test would prove nothing.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, fs.ErrPermission) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("O_CREAT open of another user's file in a sticky directory: %v, want EACCES", err)
	}
	l, err := New(path)
	if err != nil {
		t.Fatalf("New on another user's lock file in a sticky directory: %v", err)
	}
	l.Close()
	s, err := NewSimple(path)
	if err != nil {
		t.Fatalf("NewSimple on another user's lock file in a sticky directory: %v", err)
	}
	s.Close()
}

// Root is never refused by file permissions, so the refusal is made on a
// thread whose file-system user id is an unprivileged one.
func TestPermissionDeniedIsWrapped(t *testing.T) {
	dir := testDir(t)
	readOnly := filepath.Join(dir, "read-only")
	if err := os.WriteFile(readOnly, []byte(" 1\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	closedDir := filepath.Join(dir, "closed")
	if err := os.Mkdir(closedDir, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{readOnly, filepath.Join(closedDir, "lock")} {
		var errs [2]error
		onDoomedThread(func() {
			if os.Geteuid() == 0 {
				unix.Setfsuid(65534) // drops CAP_DAC_OVERRIDE on this thread too
			}
			_, errs[0] = New(path)
			_, errs[1] = NewSimple(path)
		})
		for _, err := range errs {
			if !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrLocked) {
				t.Fatalf("locking %s without permission: %v, want fs.ErrPermission", path, err)
			}
		}
	}
	if got := readFile(t, readOnly); got != " 1\n" {
		t.Fatalf("read-only file changed to %q", got)
	}
}

// A failed content write releases the lock and leaks nothing.
func TestWriteErrorReleases(t *testing.T) {
	path := tempLockPath(t)
	before := openDescriptors(t)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG.
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 2, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	_, err := New(path, WithContentTemplate("{pid};{hostname}"))
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, unix.EFBIG) || errors.Is(err, ErrLocked) {
		t.Fatalf("New with a failing write: %v, want EFBIG", err)
	}
	assertFree(t, path)
	assertNoLeak(t, "a failed write", before, openDescriptors(t))
}

// threadsBlockedInLock counts this process's threads that are in flock(2)
// now, from /proc/self/task/*/syscall, whose first field is the number of
// the system call a thread is in.
func threadsBlockedInLock(t *testing.T) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/syscall")
	if err != nil {
		t.Fatal(err)
	}
	blocked := 0
	for _, task := range tasks {
		data, err := os.ReadFile(task)
		if err != nil {
			continue // the thread has exited
		}
		if nr, _, _ := strings.Cut(string(data), " "); nr == strconv.Itoa(int(lockSyscall())) {
			blocked++
		}
	}
	return blocked
}

// osThreads counts this process's OS threads.
func osThreads(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// New truncates only when the file must shrink: with ftruncate made to
// fail, it succeeds on every old content but a longer one, and that one
// fails with the lock released.
func TestTruncateOnlyToShrink(t *testing.T) {
	path := tempLockPath(t)
	for name, old := range oldContents {
		writeFile(t, path, old)
		err := newWhileFailing(t, unix.SYS_FTRUNCATE, unix.EPERM, path, WithContentTemplate("the-holder"))
		mustShrink := len(old) > len(" the-holder\n")
		if truncated := errors.Is(err, unix.EPERM); truncated != mustShrink {
			t.Errorf("%s: New truncated: %v (err %v), want %v", name, truncated, err, mustShrink)
		}
		if err == nil && readFile(t, path) != " the-holder\n" {
			t.Errorf("%s: file holds %q", name, readFile(t, path))
		}
		assertFree(t, path)
	}
}

// Some container sandboxes refuse statx, which they do not know, with
// EPERM; New then learns what it needs from fstat.
func TestStatxRefusedFallsBackToFstat(t *testing.T) {
	path := tempLockPath(t)
	writeFile(t, path, " an earlier holder with a longer name\n")
	if err := newWhileFailing(t, unix.SYS_STATX, unix.EPERM, path, WithContentTemplate("the-holder")); err != nil {
		t.Fatalf("New with statx refused: %v", err)
	}
	if got := readFile(t, path); got != " the-holder\n" {
		t.Fatalf("file holds %q", got)
	}
}

// A path that opens a file without a name, as /proc/self/fd/N of a deleted
// file or of a memfd does when links are followed, must not make a lock
// that looks at the file start over for ever: after a bounded number of
// tries it fails with an *fs.PathError for which fs.ErrNotExist holds,
// within Acquire's deadline. NewSimple without a hook does not look, and
// locks it.
func TestPathToFileWithoutNameIsBounded(t *testing.T) {
	deleted, err := os.CreateTemp(testDir(t), "deleted")
	if err != nil {
		t.Fatal(err)
	}
	defer deleted.Close()
	if err := os.Remove(deleted.Name()); err != nil {
		t.Fatal(err)
	}
	memfd, err := unix.MemfdCreate("lockfile-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(memfd)
	hook := WithOnLock(func(*os.File) error { return nil })
	for _, path := range []string{"/proc/self/fd/" + strconv.Itoa(int(deleted.Fd())), "/proc/self/fd/" + strconv.Itoa(memfd)} {
		before := openDescriptors(t)
		for name, call := range map[string]func() error{
			"New": func() error { _, err := New(path, WithFollowSymlinks()); return err },
			"NewSimple with a hook": func() error {
				_, err := NewSimple(path, WithFollowSymlinks(), hook)
				return err
			},
			"Acquire": func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := Acquire(ctx, path, WithFollowSymlinks())
				return err
			},
			"AcquireSimple without a deadline": func() error {
				_, err := AcquireSimple(context.Background(), path, WithFollowSymlinks())
				return err
			},
		} {
			err := withinTime(t, name+" on "+path, call)
			var pathErr *fs.PathError
			if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pathErr) || pathErr.Op != "open" || pathErr.Path != path || errors.Is(err, ErrLocked) {
				t.Errorf("%s(%s): %v, want an *fs.PathError with Op open and fs.ErrNotExist", name, path, err)
			}
		}
		assertNoLeak(t, "bounded starts over on "+path, before, openDescriptors(t))
		l, err := NewSimple(path, WithFollowSymlinks())
		if err != nil {
			t.Fatalf("NewSimple(%s) without a hook: %v", path, err)
		}
		l.Close()
	}
}

// A file of procfs or sysfs passes for a regular file, but a write into it
// is an order to the kernel: what writes refuses it with ErrNotRegular,
// before writing. /proc/self/comm (this process's name, writable by it) and
// a device's uevent file in sysfs (root's, and a write of anything but an
// event name fails) are harmless to try. A lock file of the sizes such
// files report, 0 and one page, is still written.
func TestKernelInterfaceIsRefusedForWriting(t *testing.T) {
	hookRan := false
	hook := WithOnLock(func(*os.File) error { hookRan = true; return nil })
	for _, path := range []string{"/proc/self/comm", "/sys/devices/virtual/mem/null/uevent"} {
		t.Run(path, func(t *testing.T) {
			if strings.HasPrefix(path, "/sys/") && os.Geteuid() != 0 {
				skipOrFail(t, "a sysfs file writable by this user is needed: run as root")
			}
			before := readFile(t, path)
			for name, call := range map[string]func() error{
				"New": func() error { _, err := New(path); return err },
				"Acquire": func() error {
					_, err := Acquire(context.Background(), path)
					return err
				},
				"NewSimple with a hook": func() error { _, err := NewSimple(path, hook); return err },
			} {
				err := call()
				var pathErr *fs.PathError
				if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pathErr) || pathErr.Path != path || errors.Is(err, ErrLocked) {
					t.Errorf("%s(%s): %v, want an *fs.PathError with ErrNotRegular", name, path, err)
				}
			}
			if hookRan {
				t.Error("the hook ran")
			}
			if after := readFile(t, path); after != before {
				t.Fatalf("%s changed from %q to %q", path, before, after)
			}
			l, err := NewSimple(path)
			if err != nil {
				t.Fatalf("NewSimple(%s) without a hook: %v", path, err)
			}
			l.Close()
		})
	}
	for _, size := range []int{0, os.Getpagesize()} {
		path := tempLockPath(t)
		writeFile(t, path, strings.Repeat("x", size))
		l, err := New(path)
		if err != nil {
			t.Fatalf("New on a lock file of %d bytes: %v", size, err)
		}
		if got := readFile(t, path); got != " "+l.Content()+"\n" {
			t.Fatalf("New on a lock file of %d bytes left %q", size, got)
		}
		l.Close()
	}
}

// lockSyscall is the system call that takes and waits for locks.
func lockSyscall() uintptr {
	if recordLocks {
		return unix.SYS_FCNTL
	}
	return unix.SYS_FLOCK
}

// statPath describes the same file, or link, with statx as without it (a
// sandbox that refuses statx, a kernel without it) and for a path too long
// for its buffer.
func TestStatPath(t *testing.T) {
	dir := testDir(t)
	file := filepath.Join(dir, "file")
	writeFile(t, file, " 1234;host\n")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, strings.Repeat("d", 200))
	if err := os.Mkdir(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(deep, strings.Repeat("f", 100))
	writeFile(t, long, " a longer content\n")
	want := func(path string, follow bool) fileStat {
		var st unix.Stat_t
		stat := unix.Lstat
		if follow {
			stat = unix.Stat
		}
		if err := stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return newFileStat(&st)
	}
	// statPathWith calls statPath on a thread where statx answers as how says.
	statPathWith := func(how, path string, follow bool) (got fileStat, err error) {
		var filterErr error
		onDoomedThread(func() {
			switch how {
			case "statx refused":
				filterErr = failSyscall(t, unix.SYS_STATX, unix.EPERM)
			case "no statx":
				filterErr = failSyscall(t, unix.SYS_STATX, unix.ENOSYS)
			}
			if filterErr == nil {
				got, err = statPath(path, follow)
			}
		})
		if filterErr != nil {
			skipOrFail(t, "cannot install a seccomp filter: "+filterErr.Error())
		}
		return got, err
	}
	check := func(how string) {
		for _, path := range []string{file, link, long} {
			for _, follow := range []bool{false, true} {
				got, err := statPathWith(how, path, follow)
				if err != nil {
					t.Fatalf("%s: statPath(%s, %v): %v", how, path, follow, err)
				}
				if w := want(path, follow); got != w {
					t.Errorf("%s: statPath(%s, %v) = %+v, want %+v", how, path, follow, got, w)
				}
			}
		}
		if _, err := statPathWith(how, filepath.Join(dir, "missing"), false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: statPath of a missing file: %v, want ErrNotExist", how, err)
		}
	}
	if len(long) < 256 {
		t.Fatalf("the long path has only %d bytes", len(long))
	}
	for _, how := range []string{"statx", "statx refused", "no statx"} {
		check(how)
	}
}

// Paths are passed to the kernel from a 256-byte buffer when they fit, and
// the usual way when they do not: either way New opens and locks the file
// at the path, and a second attempt finds it locked.
func TestPathsAroundTheBuffer(t *testing.T) {
	dir := testDir(t)
	sub := filepath.Join(dir, strings.Repeat("d", 200))
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, length := range []int{254, 255, 256, 257} {
		path := sub + "/" + strings.Repeat("f", length-len(sub)-1)
		if len(path) != length {
			t.Fatalf("made a path of %d bytes, want %d", len(path), length)
		}
		l, err := New(path, WithContentTemplate("holder"))
		if err != nil {
			t.Fatalf("New on a path of %d bytes: %v", length, err)
		}
		if got := readFile(t, path); got != " holder\n" {
			t.Fatalf("the file at the path of %d bytes holds %q", length, got)
		}
		assertLocked(t, path, "holder")
		l.Close()
	}
	entries, err := os.ReadDir(sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d files made, want 4", len(entries))
	}
}
