package lockfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The attacker of the planted-link race is another user who owns the lock's
// directory: it links a file it cannot write (the victim) to the lock path
// and removes the link again, in a tight loop, hoping that a lock call opens
// the victim through the link and finds it with one name by the time it
// looks. Each lock call that would have written into the victim is a win.

// attackerUID is the user the attacker runs as: nobody.
const attackerUID = 65534

// toggleLinks is the attacker, run as another user: it links victim to
// lockPath and removes lockPath until its stdin closes, then reports how
// many links it made.
func toggleLinks(victim, lockPath string) int {
	var stop atomic.Bool
	go func() {
		bufio.NewReader(os.Stdin).ReadByte()
		stop.Store(true)
	}()
	fmt.Println("started")
	links := 0
	for !stop.Load() {
		switch err := unix.Link(victim, lockPath); err {
		case nil:
			links++
		case unix.EEXIST:
			// The lock call created a file there: an attacker removes it
			// too, as the owner of a directory may.
		default:
			fmt.Printf("error link: %v\n", err)
			return 1
		}
		unix.Unlink(lockPath)
	}
	fmt.Printf("links %d\n", links)
	return 0
}

func init() {
	platformHelpers["toggle-links"] = func(args []string) int { return toggleLinks(args[0], args[1]) }
}

// attackDirs makes the victim, a file only root may write, and the lock's
// directory, owned by the attacker, with the sticky bit if sticky is set.
func attackDirs(t *testing.T, sticky bool) (victim, lockDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "the planted-link race needs root, to run the attacker as another user")
	}
	root := testDir(t)
	for _, dir := range []string{root, filepath.Join(root, "private")} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o711); err != nil { // searchable, not listable, by others
			t.Fatal(err)
		}
	}
	victim = filepath.Join(root, "private", "victim")
	if err := os.WriteFile(victim, []byte("root's own bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(victim, old, old); err != nil {
		t.Fatal(err)
	}
	lockDir = filepath.Join(root, "attacker")
	mode := os.FileMode(0o755)
	if sticky {
		mode |= os.ModeSticky
	}
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lockDir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(lockDir, attackerUID, attackerUID); err != nil {
		t.Fatal(err)
	}
	return victim, lockDir
}

// startAttacker runs toggleLinks as the attacker. Linux's
// fs.protected_hardlinks would refuse the attacker's links to a file it
// cannot write; macOS has no such switch and FreeBSD's is off by default.
// CAP_FOWNER lifts it for the attacker alone, as those systems would.
func startAttacker(t *testing.T, victim, lockPath string) *helper {
	t.Helper()
	return startAttackerAs(t, victim, lockPath, []uintptr{unix.CAP_FOWNER})
}

// startAttackerAs runs toggleLinks as the attacker, with the capabilities
// given.
func startAttackerAs(t *testing.T, victim, lockPath string, caps []uintptr) *helper {
	t.Helper()
	exe := filepath.Join(filepath.Dir(filepath.Dir(victim)), "attacker.test")
	if _, err := os.Stat(exe); err != nil {
		copyFile(t, os.Args[0], exe, 0o755) // the test binary's own directory is root's alone
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=toggle-links", helperArgsEnv+"="+victim+"\n"+lockPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: attackerUID, Gid: attackerUID},
		AmbientCaps: caps,
	}
	h := startProcess(t, cmd)
	h.expect(t, "started")
	return h
}

// TestPlantedLinkRace races New, a writing hook and Acquire's first
// attempt against an attacker who owns the lock's directory, with and
// without the sticky bit, and on the command line's behalf: no call may
// write a byte into the victim, or change its modification time.
func TestPlantedLinkRace(t *testing.T) {
	attempts := 5000
	if testing.Short() {
		attempts = 500
	}
	calls := map[string]func(string) (*SimpleLockFile, error){
		"New": func(path string) (*SimpleLockFile, error) {
			l, err := New(path)
			if err != nil {
				return nil, err
			}
			return &l.SimpleLockFile, nil
		},
		"NewSimple with a hook": func(path string) (*SimpleLockFile, error) {
			return NewSimple(path, WithOnLock(func(f *os.File) error { return f.Truncate(0) }))
		},
		"Acquire": func(path string) (*SimpleLockFile, error) {
			l, err := Acquire(t.Context(), path)
			if err != nil {
				return nil, err
			}
			return &l.SimpleLockFile, nil
		},
	}
	for _, sticky := range []bool{false, true} {
		for name, lock := range calls {
			t.Run(fmt.Sprintf("%s/sticky=%v", name, sticky), func(t *testing.T) {
				victim, lockDir := attackDirs(t, sticky)
				before, err := os.Stat(victim)
				if err != nil {
					t.Fatal(err)
				}
				var victimStat unix.Stat_t
				unix.Stat(victim, &victimStat)
				lockPath := filepath.Join(lockDir, "lock")
				attacker := startAttacker(t, victim, lockPath)
				wins, taken, refused := 0, 0, 0
				var lastErr error
				for range attempts {
					l, err := lock(lockPath)
					if err != nil {
						refused++
						lastErr = err
						continue
					}
					taken++
					var st unix.Stat_t
					if err := unix.Fstat(int(l.Fd()), &st); err == nil && st.Ino == victimStat.Ino && st.Dev == victimStat.Dev {
						wins++
					}
					l.Close()
				}
				attacker.stdin.Close()
				links := attacker.expect(t, "links")
				if err := attacker.cmd.Wait(); err != nil {
					t.Fatalf("attacker: %v", err)
				}
				after, err := os.Stat(victim)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(victim)
				t.Logf("%d attempts against %s links: %d took the lock, %d refused (last: %v), %d on the victim",
					attempts, links, taken, refused, lastErr, wins)
				if wins > 0 || !bytes.Equal(got, []byte("root's own bytes\n")) || !after.ModTime().Equal(before.ModTime()) {
					t.Errorf("the attacker won %d of %d attempts: the victim holds %q, modified %v (was %v)",
						wins, attempts, got, after.ModTime(), before.ModTime())
				}
				if lastErr != nil && !errors.Is(lastErr, ErrHardLink) {
					t.Errorf("refused with %v, want ErrHardLink", lastErr)
				}
			})
		}
	}
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, perm); err != nil {
		t.Fatal(err)
	}
}

// TestUntrustedDirectory: what writes refuses a directory where another
// user could plant a link and take it away, before creating the file; the
// directories the caller and root alone control, sticky ones such as /tmp
// included, are used as before.
func TestUntrustedDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root, to give directories to another user")
	}
	cases := []struct {
		name    string
		owner   int
		mode    os.FileMode
		trusted bool
	}{
		{"another user's", attackerUID, 0o755, false},
		{"another user's, sticky", attackerUID, os.ModeSticky | 0o777, false},
		{"writable by all", 0, 0o777, false},
		{"writable by another group", 0, 0o775, false}, // gid set below
		{"the caller's", 0, 0o755, true},
		{"sticky, writable by all", 0, os.ModeSticky | 0o777, true},
		{"writable by the caller's group", 0, 0o775, false}, // its other members are other users
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			gid := os.Getegid()
			if tc.name == "writable by another group" {
				gid = attackerUID
			}
			if err := os.Chown(dir, tc.owner, gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "lock")
			for name, lock := range map[string]func() (io.Closer, error){
				"New":     func() (io.Closer, error) { return New(path) },
				"Acquire": func() (io.Closer, error) { return Acquire(t.Context(), path) },
				"NewSimple with a hook": func() (io.Closer, error) {
					return NewSimple(path, WithOnLock(func(*os.File) error { return nil }))
				},
			} {
				l, err := lock()
				if tc.trusted {
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					l.Close()
					continue
				}
				var pathErr *fs.PathError
				if !errors.Is(err, ErrHardLink) || !errors.As(err, &pathErr) || pathErr.Path != path || pathErr.Op != "open" {
					t.Fatalf("%s: %v, want an *fs.PathError (open) with ErrHardLink", name, err)
				}
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s was refused but left a file behind: %v", name, err)
				}
			}
			if tc.trusted {
				return
			}
			// A symbolic link from a trusted directory does not lead past
			// the check with WithFollowSymlinks: the directory checked is
			// the one the link leads to.
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(path, link); err != nil {
				t.Fatal(err)
			}
			if _, err := New(link, WithFollowSymlinks()); !errors.Is(err, ErrHardLink) {
				t.Fatalf("New through a link into the directory: %v, want ErrHardLink", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("New through a link was refused but left a file behind: %v", err)
			}
			// What writes nothing locks there, and WithHardLinks allows
			// the rest.
			for name, lock := range map[string]func() (io.Closer, error){
				"NewSimple":              func() (io.Closer, error) { return NewSimple(path) },
				"NewShared":              func() (io.Closer, error) { return NewShared(path) },
				"New with WithHardLinks": func() (io.Closer, error) { return New(path, WithHardLinks()) },
			} {
				l, err := lock()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				l.Close()
			}
		})
	}
}

// TestPlantedLinkInStickyDirectory races New against another user in a
// directory such as /tmp, owned by root, writable by all and sticky: the
// attacker can plant a link but cannot take it away again, so the link
// count read after the lock refuses it every time. Linux's
// fs.protected_hardlinks would refuse the link itself; it is turned off
// for the test, as macOS and FreeBSD have it, and the attacker gets no
// capability that would lift the sticky bit's rule.
func TestPlantedLinkInStickyDirectory(t *testing.T) {
	victim, _ := attackDirs(t, false)
	const knob = "/proc/sys/fs/protected_hardlinks"
	old, err := os.ReadFile(knob)
	if err != nil {
		skipOrFail(t, "cannot read "+knob)
	}
	if err := os.WriteFile(knob, []byte("0"), 0); err != nil {
		skipOrFail(t, "cannot turn off "+knob+": "+err.Error())
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0) })
	dir := filepath.Join(filepath.Dir(filepath.Dir(victim)), "shared")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(victim)
	lockPath := filepath.Join(dir, "lock")
	attacker := startAttackerAs(t, victim, lockPath, nil)
	// Lock calls made before the link is planted create a lock file of
	// their own there, which the attacker can neither remove nor link
	// over: start once the link is in place.
	victimInfo, _ := os.Stat(victim)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if info, err := os.Lstat(lockPath); err == nil && os.SameFile(info, victimInfo) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attacker planted no link in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	attempts, refused := 5000, 0
	for range attempts {
		l, err := New(lockPath)
		if err == nil {
			l.Close()
			continue
		}
		if !errors.Is(err, ErrHardLink) {
			t.Fatalf("New: %v, want ErrHardLink", err)
		}
		refused++
	}
	attacker.stdin.Close()
	links := attacker.expect(t, "links")
	attacker.cmd.Wait()
	after, _ := os.Stat(victim)
	got, _ := os.ReadFile(victim)
	t.Logf("%d attempts against %s links: %d refused", attempts, links, refused)
	if refused != attempts {
		t.Fatalf("%d of %d attempts took the lock on the planted link", attempts-refused, attempts)
	}
	if string(got) != "root's own bytes\n" || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the victim holds %q, modified %v (was %v)", got, after.ModTime(), before.ModTime())
	}
}
