package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
)

// The tests run the command as a user would: built once, then executed.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
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
	build := exec.Command("go", "build", "-o", binary, ".")
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
	stderr bytes.Buffer
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

func lockPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "test.lock")
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
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"run", "-h"}, {"status", "--help"}} {
		r := runLockfile(t, args...)
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage: lockfile ") {
			t.Errorf("lockfile %s: status %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
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
		{[]string{"run", path, "true"}, "no -- between PATH and COMMAND"},
		{[]string{"run", path, "-w", "1s", "--", "true"}, "-w after PATH: options go before PATH"},
		{[]string{"run", "-x", path, "--", "true"}, "flag provided but not defined: -x"},
		{[]string{"run", "-w", "10", path, "--", "true"}, "a duration needs a unit, such as 10s"},
		{[]string{"run", "-w", "soon", path, "--", "true"}, "not a duration"},
		{[]string{"run", "-w", "-1s", path, "--", "true"}, "a negative duration"},
		{[]string{"run", "-w"}, "flag needs an argument: -w"},
		{[]string{"run", "-E", "256", path, "--", "true"}, "not an exit status from 0 to 255"},
		{[]string{"run", "-t", "{user}", path, "--", "true"}, "unknown field {user}"},
		{[]string{"run", "-t", "{pid", path, "--", "true"}, "unmatched '{'"},
		{[]string{"status"}, "lockfile status: no PATH given"},
		{[]string{"status", path, path}, "after PATH"},
		{[]string{"status", "-w", "1s", path}, "flag provided but not defined: -w"},
	} {
		r := runLockfile(t, tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) ||
			!strings.Contains(r.stderr, "\nusage: lockfile ") {
			t.Errorf("lockfile %s: status %d, stdout %q, stderr %q; want status 2 and a usage message saying %q",
				strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
	assertMissing(t, path)
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

func TestStatusOfDirectoryFails(t *testing.T) {
	runLockfile(t, "status", t.TempDir()).check(t, 125, "", "not a regular file")
}
