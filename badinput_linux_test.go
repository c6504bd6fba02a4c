package lockfile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golockfile/lockfile/internal/template"
	"golang.org/x/sys/unix"
)

// A bad path or option must fail with an error that says what is wrong,
// typed so that code can tell (errors.Is, errors.As), never as contention,
// never by hanging, and without changing anything on disk.
type badInput struct {
	name string
	// prepare builds what the case needs in dir and returns the path to lock.
	prepare func(t *testing.T, dir string) string
	opts    []Option
	// calls are the ways the lock is taken; nil means NewSimple, New and
	// Acquire. "nobody" is NewSimple and New in a helper process run as an
	// unprivileged user.
	calls []string
	// is lists what errors.Is must find in every call's error.
	is []error
	// reason, when set, makes the error an *OptionError whose Reason says
	// this; otherwise it must be an *fs.PathError naming the path.
	reason string
	// holderIs, when set, is what Inspect(path) must fail with too.
	holderIs error
	// mayChange names the files, relative to dir, that the case changes on
	// purpose; check looks at them.
	mayChange []string
	check     func(t *testing.T, path string)
	// root marks a case that mounts a file system, which needs root.
	// Only those skip without root.
	root bool
}

func TestBadInputAndHostilePaths(t *testing.T) {
	// Root passes every permission check, so the permission cases run
	// as a helper process of an unprivileged user; any other user is
	// refused in this process.
	unprivileged := os.Geteuid() != 0
	var exe string
	withoutPermission := []string(nil)
	if !unprivileged {
		exe = executableForNobody(t)
		withoutPermission = []string{"nobody"}
	}
	longTemplate := "{pid}" + strings.Repeat("x", 3*4096)
	cases := []badInput{
		{name: "empty path", prepare: func(*testing.T, string) string { return "" }, is: []error{fs.ErrNotExist}},
		{name: "NUL byte", prepare: func(_ *testing.T, dir string) string { return filepath.Join(dir, "nul\x00byte") },
			is: []error{syscall.EINVAL}},
		{name: "a directory", prepare: func(_ *testing.T, dir string) string { return dir },
			is: []error{syscall.EISDIR}, holderIs: ErrNotRegular},
		{name: "missing parent", prepare: func(_ *testing.T, dir string) string { return filepath.Join(dir, "no", "such", "lock") },
			is: []error{fs.ErrNotExist}},
		// open(2) with O_CREAT says EISDIR for a name ending in a slash.
		{name: "missing file with a trailing slash", prepare: func(_ *testing.T, dir string) string { return filepath.Join(dir, "lock") + "/" },
			is: []error{syscall.EISDIR}},
		{name: "regular file used as a directory", prepare: func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "file"), " 1\n")
			return filepath.Join(dir, "file", "lock")
		}, is: []error{syscall.ENOTDIR}, holderIs: syscall.ENOTDIR},
		{name: "path over PATH_MAX", prepare: func(_ *testing.T, dir string) string {
			return dir + strings.Repeat("/d", unix.PathMax/2) + "/lock"
		}, is: []error{syscall.ENAMETOOLONG}, holderIs: syscall.ENAMETOOLONG},
		{name: "name over NAME_MAX", prepare: func(_ *testing.T, dir string) string { return filepath.Join(dir, strings.Repeat("n", 256)) },
			is: []error{syscall.ENAMETOOLONG}},
		{name: "symlink loop", prepare: symlinkLoop, is: []error{ErrSymlink}, holderIs: ErrSymlink},
		{name: "symlink loop, links followed", prepare: symlinkLoop, opts: []Option{WithFollowSymlinks()},
			is: []error{syscall.ELOOP}},
		{name: "symlink loop in a directory", prepare: func(t *testing.T, dir string) string {
			return filepath.Join(symlinkLoop(t, dir), "lock")
		}, is: []error{syscall.ELOOP}, holderIs: syscall.ELOOP},
		{name: "dangling symlink", prepare: func(t *testing.T, dir string) string {
			return symlink(t, filepath.Join(dir, "not-there"), filepath.Join(dir, "lock"))
		}, is: []error{ErrSymlink}, holderIs: ErrSymlink},
		{name: "symlink to a victim file", prepare: func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "victim"), "precious\n")
			return symlink(t, filepath.Join(dir, "victim"), filepath.Join(dir, "lock"))
		}, is: []error{ErrSymlink}, holderIs: ErrSymlink},
		{name: "symlink to a directory", prepare: func(t *testing.T, dir string) string {
			return symlink(t, dir, filepath.Join(dir, "lock"))
		}, is: []error{ErrSymlink}, holderIs: ErrSymlink},
		// A second name for a file: New and Acquire would write into it.
		{name: "hard link to a victim file", prepare: func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "victim"), "precious\n")
			if err := os.Link(filepath.Join(dir, "victim"), filepath.Join(dir, "lock")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "lock")
		}, calls: []string{"New", "Acquire"}, is: []error{ErrHardLink}},
		// Only what writes content is held to refusing these: NewSimple
		// writes nothing, and may lock them as flock(1) and zc.lockfile do.
		{name: "FIFO", prepare: fifo, calls: []string{"New", "Acquire"}, is: []error{ErrNotRegular}, holderIs: ErrNotRegular},
		{name: "/dev/null", prepare: func(*testing.T, string) string { return "/dev/null" },
			calls: []string{"New", "Acquire"}, is: []error{ErrNotRegular}, holderIs: ErrNotRegular},
		// A socket cannot be opened at all: open(2) says ENXIO.
		{name: "unix socket", prepare: unixSocket, is: []error{syscall.ENXIO}, holderIs: syscall.ENXIO},
		{name: "existing file without permission", prepare: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "lock")
			if err := os.WriteFile(path, []byte(" 1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if unprivileged {
				return denyToOwner(t, path, 0o000)
			}
			return openToOthers(t, dir, path)
		}, calls: withoutPermission, is: []error{fs.ErrPermission}},
		{name: "directory without write permission", prepare: func(t *testing.T, dir string) string {
			if unprivileged {
				denyToOwner(t, dir, 0o555)
				return filepath.Join(dir, "lock")
			}
			return openToOthers(t, dir, filepath.Join(dir, "lock"))
		}, calls: withoutPermission, is: []error{fs.ErrPermission}},
		{name: "read-only file system, existing file", prepare: func(t *testing.T, dir string) string {
			return readOnlyFileSystem(t, dir, "lock")
		}, is: []error{syscall.EROFS}, root: true},
		{name: "read-only file system, new file", prepare: func(t *testing.T, dir string) string {
			return readOnlyFileSystem(t, dir, "new")
		}, is: []error{syscall.EROFS}, root: true},
		// What is on the full file system's pages is overwritten until they
		// run out: the file keeps the start of the new content. The lock
		// was free and its old content named a holder that is gone.
		{name: "full file system, existing file", prepare: func(t *testing.T, dir string) string {
			return fullFileSystem(t, dir, "lock")
		}, opts: []Option{WithContentTemplate(longTemplate)}, calls: []string{"New", "Acquire"},
			is: []error{syscall.ENOSPC}, mayChange: []string{"full/lock"}, root: true,
			check: func(t *testing.T, path string) { assertStartOfContent(t, path, longTemplate) }},
		// The file is created, as a lock file always is, and stays empty.
		{name: "full file system, new file", prepare: func(t *testing.T, dir string) string {
			return fullFileSystem(t, dir, "new")
		}, opts: []Option{WithContentTemplate(longTemplate)}, calls: []string{"New", "Acquire"},
			is: []error{syscall.ENOSPC}, mayChange: []string{"full", "full/new"}, root: true,
			check: func(t *testing.T, path string) { assertStartOfContent(t, path, longTemplate) }},
	}
	// Each way the template parser can refuse a template.
	for _, tt := range []struct{ template, reason string }{
		{"{pid", "unmatched '{'"},
		{"{pid};{hostname", "unmatched '{'"},
		{"pid}", "unmatched '}'"},
		{"{}", "empty field"},
		{"{pid:>8}", "format spec"},
		{"{pid!r}", "conversion"},
		{"{user}", "unknown field"},
		{"{0}", "unknown field"},
	} {
		cases = append(cases, badInput{
			name: "template " + tt.template, prepare: existingLockFile,
			opts: []Option{WithContentTemplate(tt.template)}, calls: []string{"New", "Acquire"}, reason: tt.reason,
		})
	}

	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				skipOrFail(t, "mounting a file system for this case needs root")
			}
			dir := testDir(t)
			path := tt.prepare(t, dir)
			before := snapshot(t, dir)
			calls := tt.calls
			if calls == nil {
				calls = []string{"NewSimple", "New", "Acquire"}
			}
			for _, call := range calls {
				if call == "nobody" {
					checkAsNobody(t, exe, path, tt)
					continue
				}
				checkBadInputError(t, call, path, tt, withinTime(t, call, func() error {
					return takeBadInput(call, path, tt.opts)
				}))
			}
			if tt.holderIs != nil {
				err := withinTime(t, "Holder", func() error { _, err := Inspect(path); return err })
				if !errors.Is(err, tt.holderIs) || errors.Is(err, ErrLocked) {
					t.Errorf("Inspect(%q) = %v, want %v", path, err, tt.holderIs)
				}
			}
			after := snapshot(t, dir)
			for _, name := range tt.mayChange {
				delete(before, filepath.Join(dir, name))
				delete(after, filepath.Join(dir, name))
			}
			assertSameTree(t, before, after)
			if tt.check != nil {
				tt.check(t, path)
			}
		})
	}
	t.Logf("%d bad-input cases", len(cases))
}

func takeBadInput(call, path string, opts []Option) error {
	var l interface{ Close() error }
	var err error
	switch call {
	case "NewSimple":
		l, err = NewSimple(path, opts...)
	case "New":
		l, err = New(path, opts...)
	case "Acquire":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err = Acquire(ctx, path, opts...)
	default:
		panic("unknown call " + call)
	}
	if err == nil {
		l.Close()
	}
	return err
}

func checkBadInputError(t *testing.T, call, path string, tt badInput, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s(%q) succeeded", call, path)
		return
	}
	if errors.Is(err, ErrLocked) {
		t.Errorf("%s(%q) = %v, which is not contention, yet errors.Is(err, ErrLocked)", call, path, err)
	}
	for _, target := range tt.is {
		if !errors.Is(err, target) {
			t.Errorf("%s(%q) = %v; errors.Is(err, %v) = false", call, path, err, target)
		}
	}
	if tt.reason != "" {
		var optErr *OptionError
		if !errors.As(err, &optErr) || !strings.Contains(optErr.Reason, tt.reason) {
			t.Errorf("%s(%q) = %v, want an *OptionError saying %q", call, path, err, tt.reason)
		}
		return
	}
	var pathErr *fs.PathError
	if !errors.As(err, &pathErr) || !strings.Contains(err.Error(), path) {
		t.Errorf("%s(%q) = %v, want an *fs.PathError naming the path", call, path, err)
	}
}

// withinTime runs call and fails the test if it has not returned within
// ten seconds: no bad input may make a call hang.
func withinTime(t *testing.T, what string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s hung", what)
		return nil
	}
}

// checkAsNobody runs NewSimple and New on path in a helper process that
// runs as user and group 65534: root passes every permission check.
func checkAsNobody(t *testing.T, exe, path string, tt badInput) {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=attempt", helperArgsEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	h := startProcess(t, cmd)
	for range 2 {
		call, rest := h.next(t)
		var permission, pathErr, locked bool
		if _, err := fmt.Sscanf(rest, "%t %t %t", &permission, &pathErr, &locked); err != nil {
			t.Fatalf("helper reported %q: %v", rest, err)
		}
		if !permission || !pathErr || locked || !strings.Contains(rest, path) {
			t.Errorf("%s(%q) as an unprivileged user: %s; want an *fs.PathError naming the path with fs.ErrPermission", call, path, rest)
		}
	}
	h.finish(t)
}

// executableForNobody copies the test binary where an unprivileged user
// can run it: go test builds it in a directory only its owner can enter.
func executableForNobody(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := testDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "lockfile.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(exe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return exe
}

// openToOthers lets an unprivileged user reach path in dir, but not write
// dir.
func openToOthers(t *testing.T, dir, path string) string {
	t.Helper()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// denyToOwner gives path the mode perm, which denies its owner, until the
// test ends.
func denyToOwner(t *testing.T, path string, perm fs.FileMode) string {
	t.Helper()
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(path, 0o700) })
	return path
}

func existingLockFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "lock")
	writeFile(t, path, " 4242;old-holder\n")
	return path
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// symlinkLoop makes two links that point at each other and returns one.
func symlinkLoop(t *testing.T, dir string) string {
	t.Helper()
	symlink(t, "loop-b", filepath.Join(dir, "loop-a"))
	symlink(t, "loop-a", filepath.Join(dir, "loop-b"))
	return filepath.Join(dir, "loop-a")
}

func fifo(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	// If an open for reading hangs waiting for a writer, this lets it go
	// once the test has failed.
	t.Cleanup(func() {
		if w, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	return path
}

func unixSocket(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "socket")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	t.Cleanup(func() { l.Close() })
	return path
}

// mountTmpfs mounts a tmpfs of size bytes at dir/name until the test ends.
func mountTmpfs(t *testing.T, dir, name string, size int) string {
	t.Helper()
	mnt := filepath.Join(dir, name)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		skipOrFail(t, "cannot mount a tmpfs: "+err.Error())
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	return mnt
}

// readOnlyFileSystem mounts a tmpfs holding a lock file, makes it read-only
// and returns the path of name on it.
func readOnlyFileSystem(t *testing.T, dir, name string) string {
	t.Helper()
	mnt := mountTmpfs(t, dir, "ro", 64<<10)
	existingLockFile(t, mnt)
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	return filepath.Join(mnt, name)
}

// fullFileSystem mounts a small tmpfs holding a lock file, fills it up and
// returns the path of name on it.
func fullFileSystem(t *testing.T, dir, name string) string {
	t.Helper()
	mnt := mountTmpfs(t, dir, "full", 16<<10)
	existingLockFile(t, mnt)
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	if _, err := filler.Write(make([]byte, 1<<20)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the file system: %v, want ENOSPC", err)
	}
	return filepath.Join(mnt, name)
}

// assertStartOfContent checks what a write that ran out of space left: the
// lock is free and the file holds the start of the content and nothing
// else, so no other holder is named.
func assertStartOfContent(t *testing.T, path, tmpl string) {
	t.Helper()
	assertFree(t, path)
	content, err := template.Expand(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !strings.HasPrefix(" "+content+"\n", got) {
		t.Fatalf("after running out of space the file holds %d bytes that are not the start of the content: %.40q", len(got), got)
	}
}

// snapshot describes every file under root, and /dev/null, well enough to
// see any change: type, permissions, size, times of change, content and
// link targets.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	describe := func(path string) {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			tree[path] = err.Error()
			return
		}
		desc := fmt.Sprintf("mode %o size %d ino %d rdev %d mtime %d.%d", st.Mode, st.Size, st.Ino, st.Rdev, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(path)
			desc += fmt.Sprintf(" content %x %v", sha256.Sum256(data), err)
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			desc += fmt.Sprintf(" target %q %v", target, err)
		}
		tree[path] = desc
	}
	filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		describe(path)
		return nil
	})
	describe("/dev/null")
	return tree
}

func assertSameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	for path, was := range before {
		if now, ok := after[path]; !ok {
			t.Errorf("%s was removed", path)
		} else if now != was {
			t.Errorf("%s changed: %s -> %s", path, was, now)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s was created", path)
		}
	}
}
