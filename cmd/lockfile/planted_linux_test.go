package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
	"golang.org/x/sys/unix"
)

// The planted-link race, through the command: another user who owns the
// lock's directory links a file it cannot write (the victim) to the lock
// path and removes the link again, in a tight loop, while lockfile run
// takes the lock there again and again. A run that writes into the victim
// is the attacker's win.

// attackerUID is the attacker's user: nobody.
const attackerUID = 65534

// toggleLinksEnv makes the test binary the attacker: it links the file
// named on the variable's first line to the path on its second, and
// removes that path again, until its stdin ends.
const toggleLinksEnv = "LOCKFILE_CMD_TEST_TOGGLE_LINKS"

func init() {
	if args := os.Getenv(toggleLinksEnv); args != "" {
		victim, path, _ := strings.Cut(args, "\n")
		os.Exit(toggleLinks(victim, path))
	}
}

// toggleLinks links victim to path and removes path until stdin ends. It
// prints "started" first, and the number of links it made last.
func toggleLinks(victim, path string) int {
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	fmt.Println("started")
	links := 0
	for !stop.Load() {
		switch err := unix.Link(victim, path); err {
		case nil:
			links++
		case unix.EEXIST:
			// lockfile created the file: the directory's owner removes it.
		default:
			fmt.Println("link:", err)
			return 1
		}
		unix.Unlink(path)
	}
	fmt.Println("links", links)
	return 0
}

// needRoot skips t unless it runs as root; with LOCKFILE_CI set, it fails.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(ciEnv) != "" {
		t.Fatalf("needs root, %s (and %s is set, so this cannot be skipped)", why, ciEnv)
	}
	t.Skip("needs root, " + why)
}

// A victim is a file only root may write, with content and a modification
// time the test knows.
type victim struct {
	path    string
	content []byte
	mtime   time.Time
}

// write writes v's content and sets its modification time.
func (v victim) write(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(v.path, v.content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(v.path, v.mtime, v.mtime); err != nil {
		t.Fatal(err)
	}
}

// changed says how v differs from what the test wrote, or "" if it does
// not.
func (v victim) changed(t *testing.T) string {
	t.Helper()
	got, err := os.ReadFile(v.path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(v.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v.content) || !info.ModTime().Equal(v.mtime) {
		return fmt.Sprintf("%q, modified %v", got, info.ModTime())
	}
	return ""
}

// startAttacker runs toggleLinks as nobody, from a copy of the test binary
// in dir, which nobody can reach (the test binary's own directory is
// root's alone). Linux's fs.protected_hardlinks would refuse nobody's
// links to a file it cannot write; macOS has no such guard and FreeBSD's
// is off by default. CAP_FOWNER lifts it for the attacker alone.
func startAttacker(t *testing.T, dir, target, path string) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "attacker.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), toggleLinksEnv+"="+target+"\n"+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: attackerUID, Gid: attackerUID},
		AmbientCaps: []uintptr{unix.CAP_FOWNER},
	}
	p := start(t, cmd)
	p.expect(t, "started")
	return p
}

// TestRunPlantedLinkRace runs lockfile run 5,000 times against an attacker
// who owns the lock's directory, without and with the sticky bit, and
// races to plant a link to a root-only file at the lock path: no run may
// write a byte into that file or change its modification time, and a run
// that fails fails only as a refusal of a possible hard link.
func TestRunPlantedLinkRace(t *testing.T) {
	needRoot(t, "to run the attacker as another user")
	const attempts = 5000
	for _, sticky := range []bool{false, true} {
		t.Run(fmt.Sprintf("sticky=%v", sticky), func(t *testing.T) {
			root := testDir(t)
			private := filepath.Join(root, "private")
			if err := os.Mkdir(private, 0o711); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{root, private} {
				if err := os.Chmod(dir, 0o711); err != nil { // searchable by nobody, not listable
					t.Fatal(err)
				}
			}
			v := victim{
				path:    filepath.Join(private, "victim"),
				content: []byte("root's own bytes\n"),
				mtime:   time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC),
			}
			v.write(t)
			lockDir := filepath.Join(root, "attacker")
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
			path := filepath.Join(lockDir, "lock")
			refusal := "lockfile: open " + path + ": " + lockfile.ErrHardLink.Error() + "\n"

			attacker := startAttacker(t, root, v.path, path)
			began := time.Now()
			taken, refused, wins := 0, 0, 0
			others := map[string]int{}
			var firstWin string
			for range attempts {
				var stderr bytes.Buffer
				cmd := exec.Command(binary, "run", path, "true")
				cmd.Stderr = &stderr
				err := cmd.Run()
				var exitErr *exec.ExitError
				switch {
				case err == nil:
					taken++
				case !errors.As(err, &exitErr):
					t.Fatalf("lockfile run: %v", err)
				case exitErr.ExitCode() == exitFailed && stderr.String() == refusal:
					refused++
				default:
					others[fmt.Sprintf("%v: %q", exitErr, stderr.String())]++
				}
				// A win is counted, and undone, at once, to count the
				// next one.
				if change := v.changed(t); change != "" {
					wins++
					if firstWin == "" {
						firstWin = change
					}
					v.write(t)
				}
			}
			took := time.Since(began)
			r := attacker.wait(t)
			var links int
			if _, err := fmt.Sscanf(r.stdout, "started\nlinks %d\n", &links); err != nil || r.code != 0 {
				t.Fatalf("the attacker: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			t.Logf("%d runs in %v against %d links: %d took the lock, %d refused, %d failed "+
				"otherwise, %d wrote into the victim",
				attempts, took.Round(time.Millisecond), links, taken, refused,
				attempts-taken-refused, wins)
			if links == 0 {
				t.Error("the attacker made no link: nothing was raced")
			}
			if wins > 0 {
				t.Errorf("%d of %d runs wrote into the victim; the first left it %s "+
					"(was %q, modified %v)", wins, attempts, firstWin, v.content, v.mtime)
			}
			if len(others) > 0 {
				var failures []string
				for failure, n := range others {
					failures = append(failures, fmt.Sprintf("%d× %s", n, failure))
				}
				slices.Sort(failures)
				t.Errorf("runs failed other than with status %d and %q:\n%s",
					exitFailed, refusal, strings.Join(failures, "\n"))
			}
		})
	}
}
