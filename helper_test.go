//go:build unix || windows

package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Multi-process behaviour is tested with real processes: the test binary
// re-executes itself with helperEnv set, runs one helper and exits.
const (
	helperEnv     = "LOCKFILE_TEST_HELPER"
	helperArgsEnv = "LOCKFILE_TEST_HELPER_ARGS"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, strings.Split(os.Getenv(helperArgsEnv), "\n")))
	}
	// The first pipe a process opens starts the runtime's network poller,
	// which keeps descriptors of its own from then on. The library opens
	// none, the helpers' pipes do; open one now, so that descriptor counts
	// taken before and after a helper compare like with like.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	os.Exit(m.Run())
}

// testDir does what t.TempDir does, but removes the directory entry by
// entry: Go's os.RemoveAll on Windows uses a call that Wine does not
// implement, and the Windows suite runs under Wine.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lockfile-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var paths []string
		filepath.WalkDir(dir, func(path string, _ fs.DirEntry, _ error) error {
			paths = append(paths, path)
			return nil
		})
		for _, path := range slices.Backward(paths) {
			if err := os.Remove(path); err != nil {
				t.Errorf("removing the test directory: %v", err)
			}
		}
	})
	return dir
}

// runHelper is the child side. It reports on stdout, one line per event,
// and a holder keeps its lock until its stdin is closed.
func runHelper(mode string, args []string) int {
	report := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	waitForStdinEOF := func() { io.Copy(io.Discard, os.Stdin) }
	switch mode {
	case "hold": // path template
		l, err := New(args[0], WithContentTemplate(args[1]))
		if err != nil {
			report("error %v", err)
			return 1
		}
		report("locked %s", l.Content())
		waitForStdinEOF()
		if err := l.Close(); err != nil {
			report("error %v", err)
			return 1
		}
		return 0
	case "try": // path
		l, err := New(args[0])
		var lockErr *LockError
		switch {
		case err == nil:
			report("ok %s", l.Content())
			l.Close()
		case errors.As(err, &lockErr) && lockErr.Shared:
			report("shared")
		case errors.As(err, &lockErr) && errors.Is(err, ErrLocked):
			report("locked %s", lockErr.Holder)
		default:
			report("error %v", err)
			return 1
		}
		return 0
	case "shared": // path: hold a shared lock until stdin closes
		l, err := NewShared(args[0])
		var lockErr *LockError
		switch {
		case err == nil:
			report("locked")
			waitForStdinEOF()
			l.Close()
		case errors.As(err, &lockErr) && errors.Is(err, ErrLocked):
			report("refused %s", lockErr.Holder)
		default:
			report("error %v", err)
			return 1
		}
		return 0
	case "wait": // path timeout
		timeout, _ := time.ParseDuration(args[1])
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		l, err := Acquire(ctx, args[0])
		var lockErr *LockError
		switch {
		case err == nil:
			report("ok %s", l.Content())
			waitForStdinEOF()
			l.Close()
		case errors.As(err, &lockErr) && errors.Is(err, context.DeadlineExceeded):
			report("timeout %s", lockErr.Holder)
		default:
			report("error %v", err)
			return 1
		}
		return 0
	case "count": // lockPath counterPath rounds how
		rounds, _ := strconv.Atoi(args[2])
		for range rounds {
			if err := incrementUnderLock(args[0], args[1], args[3]); err != nil {
				report("error %v", err)
				return 1
			}
		}
		report("done")
		return 0
	case "abandon-and-spin": // path
		return runAbandonAndSpin(args[0])
	case "mutate": // changes files on request; see lost_test.go
		return runMutate()
	case "sleep":
		report("started")
		waitForStdinEOF()
		return 0

	// Helpers of the reliability tests (reliability_test.go).
	case "critical": // lockPath counterPath markerPath rounds
		return runCritical(args)
	case "crash-cycle": // lockPath longSize shortSize
		return runCrashCycle(args)
	case "attempt": // path
		return runAttempt(args)
	}
	if helper := platformHelpers[mode]; helper != nil {
		return helper(args)
	}
	report("error unknown helper %q", mode)
	return 2
}

// platformHelpers are the helpers of one platform's tests, which add them
// in init.
var platformHelpers = map[string]func(args []string) int{}

// incrementUnderLock adds one to the number in counterPath while holding the
// lock, and writes a token of its own into the lock file, as zc.lockfile's
// many-workers test does. how is "retry" (NewSimple in a loop, as
// zc.lockfile's users do) or "wait" (AcquireSimple). The token is written
// through the hook's file: opening and closing the lock file anew would
// drop a lock that belongs to the process (see lock_fcntl.go).
func incrementUnderLock(lockPath, counterPath, how string) error {
	var n int
	writeToken := WithOnLock(func(f *os.File) error {
		data, err := os.ReadFile(counterPath)
		if err != nil {
			return err
		}
		n, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		token := fmt.Sprintf(" %d-%d\n", os.Getpid(), n)
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err = f.WriteAt([]byte(token), 0)
		return err
	})
	var l *SimpleLockFile
	var err error
	for {
		if how == "wait" {
			l, err = AcquireSimple(context.Background(), lockPath, writeToken)
		} else {
			l, err = NewSimple(lockPath, writeToken)
		}
		if !errors.Is(err, ErrLocked) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	return os.WriteFile(counterPath, []byte(strconv.Itoa(n+1)), 0o644)
}

// helper is a running child process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startHelper(t *testing.T, mode string, args ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperArgsEnv+"="+strings.Join(args, "\n"))
	return startProcess(t, cmd)
}

// startProcess starts cmd with pipes to its stdin and stdout; the test's
// cleanup kills it if it is still running.
func startProcess(t *testing.T, cmd *exec.Cmd) *helper {
	t.Helper()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return h
}

// next returns the helper's next report, split into its verb and the rest.
func (h *helper) next(t *testing.T) (verb, rest string) {
	t.Helper()
	if !h.lines.Scan() {
		t.Fatalf("%v ended without a report: %v", h.cmd.Args, h.lines.Err())
	}
	verb, rest, _ = strings.Cut(h.lines.Text(), " ")
	return verb, rest
}

// expect reads the next report and fails unless its verb is want.
func (h *helper) expect(t *testing.T, want string) string {
	t.Helper()
	verb, rest := h.next(t)
	if verb != want {
		t.Fatalf("helper reported %q %q, want %q", verb, rest, want)
	}
	return rest
}

// finish closes the helper's stdin, which makes a holder release its lock,
// and waits for it to exit successfully.
func (h *helper) finish(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// kill ends the helper at once: SIGKILL on Unix, TerminateProcess on Windows.
func (h *helper) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
}

// holdInHelper starts a helper that holds the lock on path with template
// and returns it once the lock is held, with the content it wrote.
func holdInHelper(t *testing.T, path, template string) (*helper, string) {
	t.Helper()
	h := startHelper(t, "hold", path, template)
	return h, h.expect(t, "locked")
}

// tryInHelper reports what New says in another process: "locked" and the
// holder, or "ok".
func tryInHelper(t *testing.T, path string) (verb, rest string) {
	t.Helper()
	h := startHelper(t, "try", path)
	verb, rest = h.next(t)
	h.finish(t)
	return verb, rest
}
