package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
)

// The tests run the command as a user would: built once, with buildFlags,
// then executed.
var (
	binary     string
	buildFlags []string
)

// helperEnv makes the test binary a COMMAND for lockfile to run where no
// shell is at hand: it prints "ready" and its pid, waits for its stdin to
// end, and exits with the status the variable gives.
const helperEnv = "LOCKFILE_CMD_TEST_HELPER"

func TestMain(m *testing.M) {
	if status := os.Getenv(helperEnv); status != "" {
		fmt.Printf("ready %d\n", os.Getpid())
		io.Copy(io.Discard, os.Stdin)
		code, _ := strconv.Atoi(status)
		os.Exit(code)
	}
	os.Exit(buildAndRun(m))
}

// binaryEnv names a lockfile binary to test instead of one built from
// this directory: one built for Windows when the tests run under Wine,
// which has no Go, or an older one, to see which tests it fails.
const binaryEnv = "LOCKFILE_CMD_BINARY"

func buildAndRun(m *testing.M) int {
	if binary = os.Getenv(binaryEnv); binary != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "lockfile-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "lockfile")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", binary, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lockfile:", err)
		return 1
	}
	return m.Run()
}

// A result is how a run of lockfile ended.
type result struct {
	pid            int
	stdout, stderr string
	code           int
}

// lockfile runs the command to completion with empty stdin.
func runLockfile(t *testing.T, args ...string) result {
	t.Helper()
	return startLockfile(t, args...).wait(t)
}

// A proc is a running program whose stdout the test reads line by line.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // closed at EOF
	stdout strings.Builder
	stderr lockedBuffer
}

// A lockedBuffer is written by the goroutine that copies a program's
// output and read by the test while the program runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startLockfile(t *testing.T, args ...string) *proc {
	t.Helper()
	return start(t, exec.Command(binary, args...))
}

// start starts cmd with a pipe to its stdin, which stays open until the
// test closes it. The test's cleanup kills cmd if it is still running.
func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, lines: make(chan string, 100)}
	cmd.Stderr = &p.stderr
	// Processes that outlive cmd, and keep its stderr open, do not keep
	// Wait waiting.
	cmd.WaitDelay = time.Second
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			p.lines <- scanner.Text()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

const patience = 10 * time.Second

// wait closes stdin, reads the rest of stdout and waits for the exit.
func (p *proc) wait(t *testing.T) result {
	t.Helper()
	p.stdin.Close()
	timeout := time.After(patience)
	for done := false; !done; {
		select {
		case line, ok := <-p.lines:
			if ok {
				p.stdout.WriteString(line + "\n")
			}
			done = !ok
		case <-timeout:
			t.Fatalf("%v did not finish in %v", p.cmd.Args, patience)
		}
	}
	err := p.cmd.Wait()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("%v: %v", p.cmd.Args, err)
	}
	return result{pid: p.cmd.Process.Pid, stdout: p.stdout.String(), stderr: p.stderr.String(),
		code: p.cmd.ProcessState.ExitCode()}
}

// check fails unless r has the given exit code and stdout, and stderr
// holds wantStderr ("" for an empty stderr).
func (r result) check(t *testing.T, code int, stdout, wantStderr string) {
	t.Helper()
	if r.code != code || r.stdout != stdout ||
		(wantStderr == "" && r.stderr != "") || !strings.Contains(r.stderr, wantStderr) {
		t.Fatalf("got status %d, stdout %q, stderr %q; want status %d, stdout %q, stderr containing %q",
			r.code, r.stdout, r.stderr, code, stdout, wantStderr)
	}
}

// testDir does what t.TempDir does, but removes the directory entry by
// entry: Go's os.RemoveAll on Windows uses a call that Wine lacks.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lockfile-cmd-test-")
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

func lockPath(t *testing.T) string {
	return filepath.Join(testDir(t), "test.lock")
}

// hold takes the lock on path in the test process, which excludes lockfile
// as another process would; the test's cleanup releases it.
func hold(t *testing.T, path, content string) *lockfile.LockFile {
	t.Helper()
	l, err := lockfile.New(path, lockfile.WithContentTemplate(content))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists or cannot be checked (%v); it should not have been created", path, err)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"}, {"run", "-h"}, {"status", "--help"},
	} {
		r := runLockfile(t, args...)
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage: lockfile ") {
			t.Errorf("lockfile %s: status %d, stdout %q, stderr %q",
				strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

// The synopsis and the options in the help come from the flag set, so
// they cannot drift from the flags the command takes.
func TestHelpComesFromTheFlags(t *testing.T) {
	flags := runFlags(new(runConfig))
	var defaults strings.Builder
	flags.SetOutput(&defaults)
	flags.PrintDefaults()
	n := 0
	flags.VisitAll(func(f *flag.Flag) {
		n++
		if f.Usage == "" {
			t.Errorf("-%s has no usage string", f.Name)
		}
	})
	if n < 4 || !strings.Contains(defaults.String(), "inf for no limit") {
		t.Fatalf("run's flag set has %d flags; PrintDefaults says %q", n, defaults.String())
	}
	wantSynopsis := "usage: lockfile run [-E CODE] [-s] [-t TEMPLATE] [-v] [-w DURATION] " +
		"PATH [--] COMMAND [ARG...]\n"
	r := runLockfile(t, "run", "-h")
	options := "\nOptions:\n" + defaults.String() + "\n"
	if !strings.HasPrefix(r.stdout, wantSynopsis) || !strings.Contains(r.stdout, options) {
		t.Errorf("run -h does not start with %q and list the flags as PrintDefaults does:\n%s",
			wantSynopsis, r.stdout)
	}
	r = runLockfile(t, "-h")
	both := strings.Replace(wantSynopsis, "\n", "\n       lockfile status PATH\n", 1)
	if !strings.HasPrefix(r.stdout, both) {
		t.Errorf("lockfile -h does not start with both synopses:\n%s", r.stdout)
	}
	r = runLockfile(t, "run", "-E", "x", "test.lock", "true")
	if r.code != 2 || !strings.Contains(r.stderr, "\n"+wantSynopsis) {
		t.Errorf("a usage error of run: status %d, stderr %q; want the synopsis %q",
			r.code, r.stderr, wantSynopsis)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := testDir(t)
	path := filepath.Join(dir, "test.lock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "lockfile: no command given"},
		{[]string{"lock", path}, `unknown command "lock"`},
		{[]string{"run"}, "lockfile run: no PATH given"},
		{[]string{"run", path}, "no COMMAND given"},
		{[]string{"run", path, "--"}, "no COMMAND given"},
		{[]string{"run", path, "-w", "1s", "--", "true"}, "-w after PATH: options go before PATH"},
		{[]string{"run", path, "-w", "1s", "true"}, "-w after PATH: options go before PATH"},
		{[]string{"run", "-x", path, "--", "true"}, "flag provided but not defined: -x"},
		{[]string{"run", "-w", "soon", path, "--", "true"},
			"not a wait; give seconds (10, .5), a duration (1m30s) or inf"},
		{[]string{"run", "-w", "-1s", path, "--", "true"}, "a negative wait"},
		{[]string{"run", "-w", "-1", path, "--", "true"}, "a negative wait"},
		{[]string{"run", "-w", "99999999h", path, "--", "true"}, "longer than the longest wait"},
		{[]string{"run", "-w"}, "flag needs an argument: -w"},
		{[]string{"run", "-E", "256", path, "--", "true"}, "not an exit status from 0 to 255"},
		{[]string{"run", "-t", "{user}", path, "--", "true"}, "unknown field {user}"},
		{[]string{"run", "-t", "{pid", path, "--", "true"}, "unmatched '{'"},
		{[]string{"run", "-t", "{pid}\n{hostname}", path, "--", "true"},
			`a control character, '\n': the holder is one line`},
		{[]string{"run", "-t", "\x1b]0;title\a", path, "--", "true"}, `a control character, '\x1b'`},
		{[]string{"status"}, "lockfile status: no PATH given"},
		{[]string{"status", path, path}, "after PATH"},
		{[]string{"status", "-w", "1s", path}, "flag provided but not defined: -w"},
	} {
		r := runLockfile(t, tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) ||
			!strings.Contains(r.stderr, "\nusage: lockfile ") {
			t.Errorf("lockfile %q: status %d, stdout %q, stderr %q; "+
				"want status 2 and a usage message saying %q",
				tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	assertMissing(t, path)
}

func TestParseWait(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wait    time.Duration
		forever bool
		err     string
	}{
		{in: "0"},
		{in: "10", wait: 10 * time.Second},
		{in: ".5", wait: 500 * time.Millisecond},
		{in: "2.25", wait: 2250 * time.Millisecond},
		{in: "1e3", wait: 1000 * time.Second},
		{in: "1m30s", wait: 90 * time.Second},
		{in: "250ms", wait: 250 * time.Millisecond},
		{in: "inf", forever: true},
		{in: "Infinity", forever: true},
		{in: "9223372036", wait: 9223372036 * time.Second},
		{in: "9223372037", err: "longer than the longest wait, 2562047h47m16.854775807s; use inf"},
		{in: "1e400", err: "longer than the longest wait"},
		{in: "99999999h", err: "longer than the longest wait"},
		{in: "2562048h", err: "longer than the longest wait"},
		{in: "1.5h99999999999m", err: "longer than the longest wait"},
		{in: "-1", err: "a negative wait"},
		{in: "-inf", err: "a negative wait"},
		{in: "-2s", err: "a negative wait"},
		{in: "NaN", err: "not a number of seconds"},
		{in: "", err: "not a wait"},
		{in: "soon", err: "not a wait"},
		{in: "10 s", err: "not a wait"},
		{in: "1.2.3s", err: "not a wait"},
		{in: "5d", err: "not a wait"},
		{in: "h", err: "not a wait"},
	} {
		wait, forever, err := parseWait(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseWait(%q) = %v, %v, %v; want an error saying %q",
				tc.in, wait, forever, err, tc.err)
		case tc.err == "" && (err != nil || wait != tc.wait || forever != tc.forever):
			t.Errorf("parseWait(%q) = %v, %v, %v; want %v, %v",
				tc.in, wait, forever, err, tc.wait, tc.forever)
		}
	}
}

func TestStatusOfMissingFileIsFreeAndCreatesNothing(t *testing.T) {
	path := lockPath(t)
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
	assertMissing(t, path)
}

func TestStatusChangesNothing(t *testing.T) {
	path := lockPath(t)
	if err := os.WriteFile(path, []byte(" 4242;gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	assertUnchanged := func() {
		t.Helper()
		data, err := os.ReadFile(path)
		info, statErr := os.Stat(path)
		if err != nil || statErr != nil || string(data) != " 4242;gone\n" || !info.ModTime().Equal(old) {
			t.Fatalf("status changed the file: %q, %v, %v, %v", data, info.ModTime(), err, statErr)
		}
	}

	// The content of a holder that is gone does not make the lock held.
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
	assertUnchanged()

	l, err := lockfile.NewSimple(path) // a holder that writes nothing
	if err != nil {
		t.Fatal(err)
	}
	runLockfile(t, "status", path).check(t, 1, "4242;gone\n", "")
	l.Close()
	assertUnchanged()
}

func TestStatusNamesTheHolder(t *testing.T) {
	path := lockPath(t)
	hold(t, path, "{pid};web-1")
	runLockfile(t, "status", path).check(t, 1, fmt.Sprintf("%d;web-1\n", os.Getpid()), "")
}

func TestStatusOfHolderThatWroteNothing(t *testing.T) {
	path := lockPath(t)
	l, err := lockfile.NewSimple(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	runLockfile(t, "status", path).check(t, 1, "\n", "is held; the file does not name the holder")
}

// lockfile does not lock directories, as flock(1) does: there is no
// content to name the holder. Both commands say so.
func TestDirectoriesAreRefused(t *testing.T) {
	dir := testDir(t)
	hint := "lockfile: " + dir +
		" is a directory; lockfile locks a regular file, whose content names the holder\n"
	runLockfile(t, "status", dir).check(t, 125, "", "not a regular file")
	runLockfile(t, "status", dir).check(t, 125, "", hint)
	runLockfile(t, "run", dir, "--", binary, "-h").check(t, 125, "", hint)
	runLockfile(t, "run", "-s", dir, "--", binary, "-h").check(t, 125, "", hint)
}

// Content that holds terminal control bytes, written by another program,
// is printed escaped.
func TestHolderIsPrintedEscaped(t *testing.T) {
	path := lockPath(t)
	hold(t, path, "\x1b]0;pwned\a;web-1")
	runLockfile(t, "status", path).check(t, 1, `\x1b]0;pwned\a;web-1`+"\n", "")
	runLockfile(t, "run", path, "--", binary, "-h").
		check(t, 1, "", `is held by \x1b]0;pwned\a;web-1`+"\n")
}
