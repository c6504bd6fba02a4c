//go:build unix

package lockfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ciEnv is set by .ci/run. Where a test would skip because something it
// needs is missing (a peer program, root), it fails instead.
const ciEnv = "LOCKFILE_CI"

// skipOrFail skips a test that cannot run here, unless CI asked for every test.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(ciEnv) != "" {
		t.Fatalf("%s (and %s is set, so this cannot be skipped)", why, ciEnv)
	}
	t.Skip(why)
}

// openDescriptors counts this process's open file descriptors.
func openDescriptors(t *testing.T) int {
	t.Helper()
	dir := "/dev/fd"
	if runtime.GOOS == "linux" {
		dir = "/proc/self/fd"
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestWithModeSetsPermissionsOfNewFile(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	path := tempLockPath(t)
	l, err := New(path, WithMode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	assertMode(t, path, 0o600)

	defaultPath := tempLockPath(t)
	l, err = New(defaultPath)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	assertMode(t, defaultPath, 0o644)

	// An existing file keeps its permissions.
	l, err = New(defaultPath, WithMode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	assertMode(t, defaultPath, 0o644)
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Fatalf("%s has mode %#o, want %#o", path, got, want)
	}
}

// A link planted where the lock file should be must not make the lock
// truncate or write the file it points at.
func TestSymlinkIsRefusedByDefault(t *testing.T) {
	dir := testDir(t)
	victim := filepath.Join(dir, "victim")
	writeFile(t, victim, "precious data\n")
	link := filepath.Join(dir, "lock")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nothing-here"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, dangling} {
		if _, err := New(path); !errors.Is(err, ErrSymlink) || errors.Is(err, ErrLocked) {
			t.Fatalf("New(%s) = %v, want ErrSymlink", path, err)
		}
		if _, err := NewSimple(path); !errors.Is(err, ErrSymlink) {
			t.Fatalf("NewSimple(%s) = %v, want ErrSymlink", path, err)
		}
		if _, err := Inspect(path); !errors.Is(err, ErrSymlink) {
			t.Fatalf("Inspect(%s) = %v, want ErrSymlink", path, err)
		}
	}
	if got := readFile(t, victim); got != "precious data\n" {
		t.Fatalf("the link's target was changed to %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nothing-here")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a dangling link's target was created")
	}

	l, err := New(link, WithFollowSymlinks())
	if err != nil {
		t.Fatalf("New with WithFollowSymlinks: %v", err)
	}
	defer l.Close()
	if got := readFile(t, victim); got != " "+l.Content()+"\n" {
		t.Fatalf("followed link's target holds %q", got)
	}
	assertLocked(t, victim, l.Content())
}

// Only what writes refuses a device or a named pipe: New, and a hook. The
// content written must land nowhere but in a regular file. NewSimple writes
// nothing and locks them, as flock(1) does.
func TestNonRegularFileIsRefusedForWriting(t *testing.T) {
	fifo := filepath.Join(testDir(t), "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	hookRan := false
	hook := WithOnLock(func(*os.File) error { hookRan = true; return nil })
	for _, path := range []string{fifo, "/dev/null"} {
		before := openDescriptors(t)
		if _, err := New(path, WithFollowSymlinks()); !errors.Is(err, ErrNotRegular) || errors.Is(err, ErrLocked) {
			t.Fatalf("New(%s) = %v, want ErrNotRegular", path, err)
		}
		if _, err := NewSimple(path, WithFollowSymlinks(), hook); !errors.Is(err, ErrNotRegular) || hookRan {
			t.Fatalf("NewSimple(%s) with a hook = %v (hook ran: %v), want ErrNotRegular", path, err, hookRan)
		}
		assertNoLeak(t, "refusals of "+path, before, openDescriptors(t))

		l, err := NewSimple(path, WithFollowSymlinks())
		if err != nil {
			t.Fatalf("NewSimple(%s) = %v, want it locked", path, err)
		}
		if _, err := NewSimple(path, WithFollowSymlinks()); !errors.Is(err, ErrLocked) {
			t.Fatalf("second NewSimple(%s) = %v, want ErrLocked", path, err)
		}
		if _, err := Inspect(path); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("Inspect(%s) = %v, want ErrNotRegular", path, err)
		}
		l.Close()
	}
	if info, err := os.Lstat(fifo); err != nil || info.Mode().Type() != fs.ModeNamedPipe {
		t.Fatalf("the named pipe was changed: %v, %v", info, err)
	}
}

// On Unix a lock file can be removed while it is open; on Windows it cannot
// (see TestOpenLockFileCannotBeRemoved).
// If the lock file is removed and a new one created and locked while a
// waiter waits on the old one, the waiter must not end up holding the old,
// removed file next to the new holder.
func TestAcquireStartsOverWhenFileIsReplaced(t *testing.T) {
	path := tempLockPath(t)
	h, _ := holdInHelper(t, path, "{pid}")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := acquireInBackground(ctx, path)
	waitUntil(t, "a waiter on the old file", func() bool { return waiterOn(path) != nil })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	newcomer, err := New(path, WithContentTemplate("newcomer"))
	if err != nil {
		t.Fatal(err)
	}
	h.finish(t) // the old file is free now
	waitUntil(t, "a waiter on the new file", func() bool {
		w := waiterOn(path)
		atPath, err := statPath(path, false)
		return w != nil && err == nil && w.file.sameFile(atPath)
	})
	select {
	case r := <-result:
		t.Fatalf("Acquire returned (%v, %v) while the file at the path is held", r.lock, r.err)
	default:
	}
	newcomer.Close()
	r := <-result
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.lock.Close()
	if !isFileAtPath(t, r.lock.f, path) {
		t.Fatal("Acquire holds a file that is no longer at the path")
	}
	assertLocked(t, path, r.lock.Content())
}

func isFileAtPath(t *testing.T, f sysFile, path string) bool {
	t.Helper()
	locked, err := f.stat()
	if err != nil {
		t.Fatal(err)
	}
	atPath, err := statPath(path, false)
	return err == nil && locked.sameFile(atPath)
}

// Close must release at once even while this process starts children. A
// child between fork and exec holds a copy of every descriptor, the lock's
// included, for a moment after the parent has resumed; closing alone would
// leave the lock held through that moment, so Close unlocks first.
func TestCloseReleasesWhileChildrenStart(t *testing.T) {
	path := tempLockPath(t)
	stop := make(chan struct{})
	starterDone := make(chan struct{})
	starts := 0
	go func() {
		defer close(starterDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			exec.Command("true").Run()
			starts++
		}
	}()
	cycles, refused := 0, 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); cycles++ {
		// No one else takes this lock: once the last cycle's Close has
		// returned, it is free.
		l, err := NewSimple(path)
		if errors.Is(err, ErrLocked) {
			refused++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	close(stop)
	<-starterDone
	t.Logf("%d cycles while %d children started; %d locks refused right after Close", cycles, starts, refused)
	if refused > 0 {
		t.Fatalf("%d of %d locks were refused right after Close returned", refused, cycles)
	}
	if starts < 20 {
		t.Fatalf("only %d children started: the test saw too few forks to tell", starts)
	}
}
