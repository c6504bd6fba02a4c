//go:build unix || windows

package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"
)

func tempLockPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(testDir(t), "lock")
}

// assertLocked fails unless a lock attempt on path is refused with a
// *LockError that names path and holder.
func assertLocked(t *testing.T, path, holder string) {
	t.Helper()
	l, err := NewSimple(path)
	if err == nil {
		l.Close()
		t.Fatalf("NewSimple(%s) succeeded while the lock was held", path)
	}
	var lockErr *LockError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &lockErr) {
		t.Fatalf("NewSimple(%s) = %v, want a *LockError wrapping ErrLocked", path, err)
	}
	if lockErr.Path != path || lockErr.Holder != holder {
		t.Fatalf("LockError{Path: %q, Holder: %q}, want {%q, %q}", lockErr.Path, lockErr.Holder, path, holder)
	}
	if !strings.Contains(err.Error(), path) || holder != "" && !strings.Contains(err.Error(), strconv.Quote(holder)) {
		t.Fatalf("error %q does not name path %q and holder %q", err, path, holder)
	}
}

func assertFree(t *testing.T, path string) {
	t.Helper()
	l, err := NewSimple(path)
	if err != nil {
		t.Fatalf("lock on %s should be free: %v", path, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// readFile reads a file. A lock file that this process holds is read
// through the lock's own descriptor: where locks belong to the process,
// opening and closing the file anew would drop the lock.
func readFile(t *testing.T, path string) string {
	t.Helper()
	switch content, state := readHeld(path); state {
	case heldExclusive:
		return content
	case heldShared:
		// Shared holders write nothing, and their descriptor is not read.
		t.Fatalf("readFile(%s): this process holds it shared; where locks belong to the process, reading it would drop the lock", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// readHeld reads a lock file this process holds, through the lock's own
// descriptor, where the kernel cannot keep lock objects apart; elsewhere
// it reports nothing held, and the file is read as any other.
var readHeld = func(path string) (string, lockState) { return "", free }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSecondLockFailsUntilClose(t *testing.T) {
	path := tempLockPath(t)
	first, err := NewSimple(path)
	if err != nil {
		t.Fatal(err)
	}
	if first.Path() != path {
		t.Fatalf("Path() = %q, want %q", first.Path(), path)
	}
	assertLocked(t, path, "")
	if _, err := New(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("New while held: %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("lock file gone after Close: %v", err)
	}
	assertFree(t, path)
}

func TestCloseTwiceReturnsNil(t *testing.T) {
	l, err := New(tempLockPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func TestConcurrentCloseReleasesOnce(t *testing.T) {
	path := tempLockPath(t)
	for range 20 {
		l, err := New(path)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- l.Close() })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Close: %v", err)
			}
		}
		assertFree(t, path)
	}
}

func TestContentFormat(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	host := hostname(t)
	tests := []struct {
		template string // "" means the default
		want     string
	}{
		{"", " " + pid + "\n"},
		{"{pid}", " " + pid + "\n"},
		{"{hostname}", " " + host + "\n"},
		{"{pid};{hostname}", " " + pid + ";" + host + "\n"},
		{"{pid}/{hostname}", " " + pid + "/" + host + "\n"},
		{"pid={pid} host={hostname}!", " pid=" + pid + " host=" + host + "!\n"},
		{"{{pid}} {{{pid}}}", " {pid} {" + pid + "}\n"},
		{"no fields", " no fields\n"},
		{"", " " + pid + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			path := tempLockPath(t)
			// A longer old content must not survive past the new one.
			writeFile(t, path, strings.Repeat("x", 300))
			var opts []Option
			if tt.template != "" {
				opts = append(opts, WithContentTemplate(tt.template))
			}
			l, err := New(path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := readFile(t, path); got != tt.want {
				t.Fatalf("file holds %q, want %q", got, tt.want)
			}
			if got, want := l.Content(), tt.want[1:len(tt.want)-1]; got != want {
				t.Fatalf("Content() = %q, want %q", got, want)
			}
			assertLocked(t, path, strings.TrimSpace(tt.want))
		})
	}
}

func TestBadTemplateTouchesNothing(t *testing.T) {
	for _, template := range []string{"{", "}", "{}", "{pid", "pid}", "{user}", "{pid:>8}", "{pid!r}", "{0}", "a{{b}"} {
		t.Run(template, func(t *testing.T) {
			dir := testDir(t)
			missing := filepath.Join(dir, "missing")
			_, err := New(missing, WithContentTemplate(template))
			var optErr *OptionError
			if !errors.As(err, &optErr) || optErr.Option != "WithContentTemplate" {
				t.Fatalf("New with template %q: %v, want an *OptionError", template, err)
			}
			if errors.Is(err, ErrLocked) {
				t.Fatalf("a bad template is not ErrLocked: %v", err)
			}
			if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a bad template created the file: %v", err)
			}
			existing := filepath.Join(dir, "existing")
			writeFile(t, existing, " old\n")
			if _, err := New(existing, WithContentTemplate(template)); err == nil {
				t.Fatal("New succeeded with a bad template")
			}
			if got := readFile(t, existing); got != " old\n" {
				t.Fatalf("a bad template changed the file to %q", got)
			}
			assertFree(t, existing)
		})
	}
}

func TestBadOptionsTouchNothing(t *testing.T) {
	path := tempLockPath(t)
	for name, call := range map[string]func() error{
		"NewSimple with a template": func() error {
			_, err := NewSimple(path, WithContentTemplate("{pid}"))
			return err
		},
		"WithMode with a type bit": func() error {
			_, err := New(path, WithMode(fs.ModeDir|0o755))
			return err
		},
		"WithMode with setuid": func() error {
			_, err := NewSimple(path, WithMode(fs.ModeSetuid|0o755))
			return err
		},
	} {
		var optErr *OptionError
		if err := call(); !errors.As(err, &optErr) {
			t.Errorf("%s: %v, want an *OptionError", name, err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s created the file", name)
		}
	}
	// A mode the owner cannot read and write with would make a lock file
	// that only its first lock can open.
	for _, perm := range []fs.FileMode{0, 0o444, 0o200, 0o400, 0o500, 0o077, 0o577} {
		for name, call := range map[string]func() error{
			"New":       func() error { _, err := New(path, WithMode(perm)); return err },
			"NewSimple": func() error { _, err := NewSimple(path, WithMode(perm)); return err },
			"Acquire":   func() error { _, err := Acquire(context.Background(), path, WithMode(perm)); return err },
		} {
			var optErr *OptionError
			if err := call(); !errors.As(err, &optErr) || optErr.Option != "WithMode" || !strings.Contains(optErr.Reason, "0o600") {
				t.Errorf("%s with WithMode(%#o): %v, want an *OptionError saying 0o600", name, perm, err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s with WithMode(%#o) created the file", name, perm)
			}
		}
	}
	for _, perm := range []fs.FileMode{0o600, 0o640, 0o666, 0o777} {
		l, err := NewSimple(path, WithMode(perm))
		if err != nil {
			t.Fatalf("WithMode(%#o): %v", perm, err)
		}
		l.Close()
		os.Remove(path)
	}
}

// Misuse returns an error or does nothing; it never panics. A nil Option
// and a nil Context are refused before the file is created; zero and nil
// lock objects hold nothing.
func TestMisuseDoesNotPanic(t *testing.T) {
	path := tempLockPath(t)
	for name, call := range map[string]func() error{
		"New":           func() error { _, err := New(path, nil); return err },
		"NewSimple":     func() error { _, err := NewSimple(path, WithMode(0o600), nil); return err },
		"Acquire":       func() error { _, err := Acquire(context.Background(), path, nil, WithMode(0o600)); return err },
		"AcquireSimple": func() error { _, err := AcquireSimple(context.Background(), path, nil); return err },
	} {
		var optErr *OptionError
		if err := call(); !errors.As(err, &optErr) || optErr.Option != "Option" || optErr.Value != "nil" {
			t.Errorf("%s with a nil Option: %v, want an *OptionError for Option(nil)", name, err)
		}
	}
	var noContext context.Context
	for name, call := range map[string]func() error{
		"Acquire":       func() error { _, err := Acquire(noContext, path); return err },
		"AcquireSimple": func() error { _, err := AcquireSimple(noContext, path); return err },
	} {
		var pathErr *fs.PathError
		if err := call(); !errors.Is(err, fs.ErrInvalid) || !errors.As(err, &pathErr) || pathErr.Path != path {
			t.Errorf("%s with a nil Context: %v, want an *fs.PathError with fs.ErrInvalid", name, err)
		}
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused call created the file: %v", err)
	}
	// A nil Context on a held lock, where a wait would begin, is refused too.
	holder, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(noContext, path); !errors.Is(err, fs.ErrInvalid) || errors.Is(err, ErrLocked) {
		t.Errorf("Acquire with a nil Context on a held lock: %v, want fs.ErrInvalid", err)
	}
	holder.Close()

	var zero LockFile
	var zeroSimple SimpleLockFile
	if zero.Content() != "" || zero.Path() != "" || zeroSimple.Path() != "" {
		t.Errorf("a zero LockFile says Content %q, Path %q; a zero SimpleLockFile Path %q; want empty", zero.Content(), zero.Path(), zeroSimple.Path())
	}
	for range 2 {
		if err := zero.Close(); err != nil {
			t.Errorf("zero LockFile Close: %v, want nil", err)
		}
		if err := zeroSimple.Close(); err != nil {
			t.Errorf("zero SimpleLockFile Close: %v, want nil", err)
		}
	}
	var nilLock *LockFile
	var nilSimple *SimpleLockFile
	if err := nilLock.Close(); err != fs.ErrInvalid {
		t.Errorf("nil *LockFile Close: %v, want fs.ErrInvalid", err)
	}
	if err := nilSimple.Close(); err != fs.ErrInvalid {
		t.Errorf("nil *SimpleLockFile Close: %v, want fs.ErrInvalid", err)
	}
	if nilLock.Content() != "" || nilLock.Path() != "" || nilSimple.Path() != "" {
		t.Errorf("nil locks say Content %q, Path %q and %q; want empty", nilLock.Content(), nilLock.Path(), nilSimple.Path())
	}
	assertFree(t, path)
}

// A hard link planted at the lock path must not make anything that writes
// write into the file it names: New, Acquire and a hook refuse it with
// ErrHardLink, release the lock, and leave every byte and the modification
// time as they were. What writes nothing may lock it, and WithHardLinks
// allows it.
func TestHardLinkIsRefusedForWriting(t *testing.T) {
	dir := testDir(t)
	victim := filepath.Join(dir, "passwd")
	const precious = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"
	writeFile(t, victim, precious)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(victim, old, old); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.lock")
	if err := os.Link(victim, path); err != nil {
		t.Fatal(err)
	}
	hookRan := false
	writingHook := WithOnLock(func(f *os.File) error {
		hookRan = true
		_, err := f.WriteAt([]byte("hook state"), 1)
		return err
	})
	before := openDescriptors(t)
	for name, call := range map[string]func() error{
		"New":     func() error { _, err := New(path); return err },
		"Acquire": func() error { _, err := Acquire(context.Background(), path); return err },
		"NewSimple with a hook": func() error {
			_, err := NewSimple(path, writingHook)
			return err
		},
		"AcquireSimple with a hook": func() error {
			_, err := AcquireSimple(context.Background(), path, writingHook)
			return err
		},
		"New with WithFollowSymlinks": func() error { _, err := New(path, WithFollowSymlinks()); return err },
	} {
		err := call()
		var pathErr *fs.PathError
		if !errors.Is(err, ErrHardLink) || !errors.As(err, &pathErr) || pathErr.Path != path || errors.Is(err, ErrLocked) {
			t.Errorf("%s on a hard link: %v, want an *fs.PathError naming the path with ErrHardLink", name, err)
		}
		assertFree(t, path)
	}
	assertNoLeak(t, "refusals of a hard link", before, openDescriptors(t))
	if hookRan {
		t.Error("a hook ran on a hard link")
	}
	info, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, victim); got != precious || !info.ModTime().Equal(old) {
		t.Fatalf("the linked file now holds %q, modified %v; want %q, modified %v", got, info.ModTime(), precious, old)
	}

	// NewSimple without a hook writes nothing and locks it; the holder
	// is read from byte 1 of the first line.
	s, err := NewSimple(path)
	if err != nil {
		t.Fatalf("NewSimple on a hard link: %v", err)
	}
	firstLine, _, _ := strings.Cut(precious, "\n")
	assertLocked(t, victim, firstLine[1:])
	s.Close()
	if got := readFile(t, victim); got != precious {
		t.Fatalf("NewSimple changed the linked file to %q", got)
	}

	// WithHardLinks lets a lock file with two names be written.
	l, err := New(path, WithHardLinks())
	if err != nil {
		t.Fatalf("New with WithHardLinks: %v", err)
	}
	defer l.Close()
	if got := readFile(t, victim); got != " "+l.Content()+"\n" {
		t.Fatalf("with WithHardLinks the file holds %q", got)
	}
	assertLocked(t, victim, l.Content())
}

// A refused attempt must leave every byte of the holder's file as it was:
// zc.lockfile once truncated on open and lost the holder's pid this way.
func TestRefusedAttemptChangesNothing(t *testing.T) {
	path := tempLockPath(t)
	h, content := holdInHelper(t, path, "{pid};{hostname}")
	if want := strconv.Itoa(h.cmd.Process.Pid) + ";" + hostname(t); content != want {
		t.Fatalf("helper wrote %q, want %q", content, want)
	}
	before := readFile(t, path)
	for range 3 {
		assertLocked(t, path, content)
		if _, err := New(path, WithContentTemplate("intruder {hostname}")); !errors.Is(err, ErrLocked) {
			t.Fatalf("New while another process holds the lock: %v", err)
		}
	}
	if after := readFile(t, path); after != before {
		t.Fatalf("refused attempts changed the file from %q to %q", before, after)
	}
	if other := startHelper(t, "try", path); other.expect(t, "locked") != content {
		t.Fatal("another process read a different holder")
	}
	h.finish(t)
	assertTakesOver(t, path, "the holder closed it")
}

// assertTakesOver takes the free lock on path with the default template and
// checks that the file then names this process and nothing else.
func assertTakesOver(t *testing.T, path, after string) {
	t.Helper()
	l, err := New(path)
	if err != nil {
		t.Fatalf("lock not free after %s: %v", after, err)
	}
	defer l.Close()
	if got, want := readFile(t, path), " "+strconv.Itoa(os.Getpid())+"\n"; got != want {
		t.Fatalf("after %s, the new holder's file holds %q, want %q", after, got, want)
	}
}

func TestTwoLockObjectsInOneProcessExclude(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithContentTemplate("in-process {pid}"))
	if err != nil {
		t.Fatal(err)
	}
	assertLocked(t, path, l.Content())
	if _, err := NewSimple(path, WithFollowSymlinks()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock object in one process: %v, want ErrLocked", err)
	}
	l.Close()
	assertFree(t, path)
}

// Dropping the last reference must not release the lock: nothing but Close
// or the end of the process may.
func TestGarbageCollectionDoesNotRelease(t *testing.T) {
	path := tempLockPath(t)
	var (
		dropped weak.Pointer[LockFile]
		fd      sysFile
	)
	func() {
		l, err := New(path)
		if err != nil {
			t.Fatal(err)
		}
		dropped, fd = weak.Make(l), l.f
	}()
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // let cleanups run, if any were queued
	}
	if dropped.Value() != nil {
		t.Fatal("the dropped lock was not collected; the test proves nothing")
	}
	assertLocked(t, path, strconv.Itoa(os.Getpid()))
	if err := release(fd); err != nil { // what Close would have done
		t.Fatal(err)
	}
	assertFree(t, path)
}

// A child started while the lock is held must not keep it alive.
func TestChildProcessDoesNotInheritLock(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	child := startHelper(t, "sleep")
	child.expect(t, "started")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	assertFree(t, path)
	// The parent can take it again, and so can another process, while the
	// child still runs.
	again, err := New(path)
	if err != nil {
		t.Fatalf("parent cannot re-take the lock while its child runs: %v", err)
	}
	again.Close()
	if verb, rest := startHelper(t, "try", path).next(t); verb != "ok" {
		t.Fatalf("another process cannot take the lock while the child runs: %s %s", verb, rest)
	}
	child.finish(t)
}

func TestKilledHolderReleasesAtOnce(t *testing.T) {
	path := tempLockPath(t)
	h, content := holdInHelper(t, path, "{pid};{hostname} with a long tail to be cut off")
	assertLocked(t, path, content)
	h.kill(t)
	assertTakesOver(t, path, "its holder was killed")
}

func TestOnLockHook(t *testing.T) {
	path := tempLockPath(t)
	state := `{"port": 8080}`
	l, err := NewSimple(path, WithOnLock(func(f *os.File) error {
		// The lock is held while the hook runs.
		if other, err := NewSimple(path); !errors.Is(err, ErrLocked) {
			if other != nil {
				other.Close()
			}
			return fmt.Errorf("lock not held in the hook: %v", err)
		}
		if _, err := f.WriteAt([]byte(" "+state+"\n"), 0); err != nil {
			return err
		}
		buf := make([]byte, len(state))
		_, err := f.ReadAt(buf, 1)
		if string(buf) != state {
			return fmt.Errorf("hook read back %q", buf)
		}
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	assertLocked(t, path, state)
	l.Close()
	if got := readFile(t, path); got != " "+state+"\n" {
		t.Fatalf("hook's state %q did not stay in the file", got)
	}
}

func TestOnLockRunsAfterContentIsWritten(t *testing.T) {
	var seen string
	l, err := New(tempLockPath(t), WithContentTemplate("{pid}"), WithOnLock(func(f *os.File) error {
		data, err := os.ReadFile(f.Name())
		seen = string(data)
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if want := " " + l.Content() + "\n"; seen != want {
		t.Fatalf("hook saw %q, want the content %q", seen, want)
	}
}

func TestOnLockErrorReleases(t *testing.T) {
	path := tempLockPath(t)
	hookErr := errors.New("state file is corrupt")
	before := openDescriptors(t)
	for _, take := range slices.Repeat([]func() error{
		func() error {
			_, err := NewSimple(path, WithOnLock(func(*os.File) error { return hookErr }))
			return err
		},
		func() error { _, err := New(path, WithOnLock(func(*os.File) error { return hookErr })); return err },
	}, 20) {
		err := take()
		if !errors.Is(err, hookErr) || errors.Is(err, ErrLocked) {
			t.Fatalf("hook failure: %v, want it wrapped, and not ErrLocked", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("hook failure %q does not name the path", err)
		}
		assertFree(t, path)
	}
	assertNoLeak(t, "40 hook failures", before, openDescriptors(t))
}

func TestOpenErrorsAreWrappedAndNotLocked(t *testing.T) {
	dir := testDir(t)
	tests := []struct {
		name string
		path string
		is   error // nil: any error that is not ErrLocked
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "lock"), fs.ErrNotExist},
		{"empty path", "", fs.ErrNotExist},
		{"a directory", dir, nil},
		{"a NUL byte", filepath.Join(dir, "nul\x00byte"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, take := range []func(string) error{
				func(p string) error { _, err := NewSimple(p); return err },
				func(p string) error { _, err := New(p); return err },
			} {
				err := take(tt.path)
				if err == nil {
					t.Fatalf("locking %q succeeded", tt.path)
				}
				if errors.Is(err, ErrLocked) {
					t.Fatalf("%v is not contention, yet errors.Is(err, ErrLocked)", err)
				}
				var pathErr *fs.PathError
				if !errors.As(err, &pathErr) {
					t.Fatalf("%v does not wrap the OS error in a *fs.PathError", err)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Fatalf("%v: errors.Is(err, %v) = false", err, tt.is)
				}
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("bad paths left %v in the directory (%v)", entries, err)
	}
}

// zc.lockfile's many-workers test: workers each take the lock and add one
// to a counter kept in another file. Any overlap loses an increment.
func TestManyProcessesEachIncrementOnce(t *testing.T) {
	for _, how := range []string{"retry", "wait"} {
		t.Run(how, func(t *testing.T) {
			dir := testDir(t)
			lockPath := filepath.Join(dir, "lock")
			counterPath := filepath.Join(dir, "counter")
			writeFile(t, counterPath, "0")
			const processes, rounds, goroutines = 5, 10, 5
			var helpers []*helper
			for range processes {
				helpers = append(helpers, startHelper(t, "count", lockPath, counterPath, strconv.Itoa(rounds), how))
			}
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range rounds {
						if err := incrementUnderLock(lockPath, counterPath, how); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			for _, h := range helpers {
				h.expect(t, "done")
				h.finish(t)
			}
			if got, want := readFile(t, counterPath), strconv.Itoa((processes+goroutines)*rounds); got != want {
				t.Fatalf("counter = %s, want %s: two workers held the lock at once", got, want)
			}
			if token := readFile(t, lockPath); !regexp.MustCompile(`^ \d+-\d+\n$`).MatchString(token) {
				t.Fatalf("lock file holds %q, want exactly one token", token)
			}
		})
	}
}

// The holder is read from byte 1 on, because on Windows nobody but the
// holder can read the locked byte 0.
//
// Only the first line is the holder: a new holder writes its content and
// then truncates, and a reader in between sees the old content's tail.
func TestHolderIsFirstLineFromByteOne(t *testing.T) {
	path := tempLockPath(t)
	for content, want := range map[string]string{
		"X 77;host\n":                  "77;host",
		" 99;h\n3456;long-host-name\n": "99;h",
		"":                             "",
		" \n":                          "",
	} {
		writeFile(t, path, content)
		f, err := openFile(path, os.O_RDONLY, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := readHolder(f); got != want {
			t.Errorf("readHolder of %q = %q, want %q", content, got, want)
		}
		f.close()
	}
}

func TestNoDescriptorLeaks(t *testing.T) {
	dir := testDir(t)
	path := filepath.Join(dir, "lock")
	holder, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	before := openDescriptors(t)
	for range 50 {
		if _, err := NewSimple(path); !errors.Is(err, ErrLocked) {
			t.Fatal(err)
		}
		if _, err := New(path); !errors.Is(err, ErrLocked) {
			t.Fatal(err)
		}
		if _, err := New(dir); err == nil {
			t.Fatal("locked a directory")
		}
		if _, err := New(filepath.Join(dir, "missing", "lock")); err == nil {
			t.Fatal("locked in a missing directory")
		}
	}
	holder.Close()
	for range 50 {
		l, err := New(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	assertNoLeak(t, "Close and 200 failures", before-1, openDescriptors(t)) // -1: the holder's
}

func assertNoLeak(t *testing.T, what string, before, after int) {
	t.Helper()
	if after > before {
		t.Fatalf("%s leaked descriptors: %d before, %d after", what, before, after)
	}
}

// Whatever the file held before, New must leave its content and nothing
// else, and mark the file as written now.
func TestContentReplacesAnyOldContent(t *testing.T) {
	path := tempLockPath(t)
	const content = " the-holder\n"
	long := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for name, old := range oldContents {
		writeFile(t, path, old)
		if err := os.Chtimes(path, long, long); err != nil {
			t.Fatal(err)
		}
		l, err := New(path, WithContentTemplate("the-holder"))
		if err != nil {
			t.Fatal(err)
		}
		got := readFile(t, path)
		info, err := os.Stat(path)
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != content {
			t.Errorf("%s: file holds %q, want %q", name, got, content)
		}
		if info.ModTime().Equal(long) {
			t.Errorf("%s: the file's modification time was not updated", name)
		}
	}
}

// oldContents are what a lock file may hold when New writes " the-holder\n".
var oldContents = map[string]string{
	"empty":                "",
	"shorter":              " x\n",
	"longer":               " an earlier holder with a longer name\n",
	"equal length":         " other-name\n",
	"identical":            " the-holder\n",
	"content then garbage": " the-holder\ngarbage\n",
	"no newline":           " the-holder",
}

// A hook that panics must not leave the lock held: the descriptor has no
// cleanup that would ever release it.
func TestPanickingHookReleases(t *testing.T) {
	path := tempLockPath(t)
	before := openDescriptors(t)
	for _, take := range []func(Option) error{
		func(o Option) error { _, err := NewSimple(path, o); return err },
		func(o Option) error { _, err := New(path, o); return err },
	} {
		func() {
			defer func() {
				if r := recover(); r != "hook bug" {
					t.Fatalf("recovered %v, want the hook's panic", r)
				}
			}()
			take(WithOnLock(func(*os.File) error { panic("hook bug") }))
			t.Fatal("the hook's panic did not reach the caller")
		}()
		assertFree(t, path)
	}
	assertNoLeak(t, "two panicking hooks", before, openDescriptors(t))
}

// A later option of the same kind replaces an earlier one, a refused one
// included, as the Option doc says.
func TestLaterOptionReplacesEarlier(t *testing.T) {
	path := tempLockPath(t)
	l, err := New(path, WithMode(0o4755), WithMode(0o600), WithContentTemplate("{nope}"), WithContentTemplate("ok"))
	if err != nil {
		t.Fatalf("New with refused options replaced by good ones: %v", err)
	}
	defer l.Close()
	if l.Content() != "ok" {
		t.Fatalf("content %q, want the later template's", l.Content())
	}
	var optErr *OptionError
	if _, err := New(tempLockPath(t), WithMode(0o600), WithMode(0o4755)); !errors.As(err, &optErr) || optErr.Option != "WithMode" {
		t.Fatalf("New with a good mode replaced by a refused one = %v, want an OptionError", err)
	}
}
