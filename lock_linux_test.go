package lockfile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
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
			err := newWhileFailing(t, unix.SYS_FLOCK, errno, path)
			if !errors.Is(err, ErrUnsupported) || !errors.Is(err, errno) || errors.Is(err, ErrLocked) {
				t.Fatalf("New on a file system answering %v: %v, want ErrUnsupported wrapping it", errno, err)
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
		if nr, _, _ := strings.Cut(string(data), " "); nr == strconv.Itoa(unix.SYS_FLOCK) {
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
			if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pathErr) || pathErr.Op != "lock" || pathErr.Path != path || errors.Is(err, ErrLocked) {
				t.Errorf("%s(%s): %v, want an *fs.PathError with Op lock and fs.ErrNotExist", name, path, err)
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

// NewSimple locks a named pipe at once: opened for reading and writing, it
// waits for no peer. NewSimple's doc compares the peers, checked here too:
// flock(1) opens it for reading only and so waits in open(2) for a writer,
// and zc.lockfile fails on it as not seekable.
func TestNamedPipe(t *testing.T) {
	path := fifo(t, testDir(t))
	err := withinTime(t, "NewSimple on a named pipe", func() error {
		l, err := NewSimple(path)
		if err != nil {
			return err
		}
		defer l.Close()
		if _, err := NewSimple(path); !errors.Is(err, ErrLocked) {
			t.Errorf("a second NewSimple on the named pipe: %v, want ErrLocked", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("NewSimple on a named pipe: %v", err)
	}

	const zcTry = "import sys, zc.lockfile\ntry:\n    zc.lockfile.SimpleLockFile(sys.argv[1])\n    print('locked')\nexcept Exception as e:\n    print(type(e).__name__)\n"
	out, err := exec.Command(zcPython(t), "-c", zcTry, path).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "UnsupportedOperation" {
		t.Errorf("zc.lockfile on a named pipe: %q, %v; want UnsupportedOperation", got, err)
	}

	flock := exec.Command(flockCommand(t), path, "true")
	if err := flock.Start(); err != nil {
		t.Fatal(err)
	}
	// Blocked in its open of the pipe: the dynamic loader's opens, which
	// come first, do not ask for O_CREAT.
	waitUntil(t, "flock(1) to wait in open(2)", func() bool {
		syscall, err := os.ReadFile("/proc/" + strconv.Itoa(flock.Process.Pid) + "/syscall")
		fields := strings.Fields(string(syscall))
		if err != nil || len(fields) < 4 || fields[0] != strconv.Itoa(unix.SYS_OPENAT) {
			return false
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(fields[3], "0x"), 16, 64)
		return err == nil && flags&unix.O_CREAT != 0
	})
	// A writer exists only once this open succeeds, which needs flock(1)'s
	// reader; then its open returns and it locks and exits.
	w, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening the named pipe for writing beside flock(1): %v", err)
	}
	defer w.Close()
	if err := flock.Wait(); err != nil {
		t.Fatalf("flock(1) once a writer came: %v", err)
	}
}

// A wait that every caller gave up must not keep the lock once the holder
// lets go, even when its process never runs the waiter again: the helper
// gives up and then keeps its only P busy, with preemption off. Without
// the detached descriptor, the lock it takes on release would stay held
// for as long as the helper spins, and the retries below would fail.
func TestAbandonedWaitDoesNotKeepLockWhileProcessIsBusy(t *testing.T) {
	path := tempLockPath(t)
	holder, err := NewSimple(path)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=abandon-and-spin", helperArgsEnv+"="+path,
		"GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1")
	h := startProcess(t, cmd)
	// The helper's thread in flock, once there is one, and what it is
	// doing: a system call's number, or "running".
	var waiterSyscall string
	syscallOf := func(task string) string {
		data, _ := os.ReadFile(task)
		nr, _, _ := strings.Cut(string(data), " ")
		return strings.TrimSpace(nr)
	}
	flock := strconv.Itoa(unix.SYS_FLOCK)
	waitUntil(t, "the helper's waiter to block in flock", func() bool {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/*/syscall")
		for _, task := range tasks {
			if syscallOf(task) == flock {
				waiterSyscall = task
				return true
			}
		}
		return false
	})
	if _, err := io.WriteString(h.stdin, "give up\n"); err != nil {
		t.Fatal(err)
	}
	h.expect(t, "gave-up")
	// The helper must spin before the lock is let go: a waiter whose call
	// returns while the helper is still in the write(2) of its report
	// takes the P that write left and runs. Time the process spends in
	// user mode from now, five clock ticks of it, can only be the spin.
	userTime := func() int {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		ticks, err := strconv.Atoi(fields[11]) // utime, the 14th field
		if err != nil {
			t.Fatal(err)
		}
		return ticks
	}
	spinFrom := userTime()
	waitUntil(t, "the helper to spin", func() bool { return userTime() >= spinFrom+5 })
	holder.Close()
	// Let the helper's call take the lock, return, and its thread park
	// for want of a P, before anyone here tries: a try made earlier could
	// beat it to the lock, and prove nothing.
	waitUntil(t, "the helper's waiter to return from flock and park", func() bool {
		nr := syscallOf(waiterSyscall)
		return nr != flock && nr != "running" && nr != ""
	})
	refused := 0
	for deadline := time.Now().Add(10 * time.Second); ; refused++ {
		l, err := NewSimple(path)
		if err == nil {
			l.Close()
			break
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock is still held 10 s after its holder let go, by a wait its caller gave up (%d attempts refused)", refused)
		}
	}
	t.Logf("%d attempts refused after the holder let go", refused)
}
