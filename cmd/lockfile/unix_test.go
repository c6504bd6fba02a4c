//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ciEnv is set by .ci/run: a test that would skip for want of flock(1)
// fails instead.
const ciEnv = "LOCKFILE_CI"

func needFlock(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		if os.Getenv(ciEnv) != "" {
			t.Fatalf("util-linux flock(1) is missing (and %s is set, so this cannot be skipped)", ciEnv)
		}
		t.Skip("util-linux flock(1) is missing")
	}
}

// expect fails unless the next line on stdout is want.
func (p *proc) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("%v: stdout ended, want %q", p.cmd.Args, want)
		}
		p.stdout.WriteString(line + "\n")
		if line != want {
			t.Fatalf("%v printed %q, want %q", p.cmd.Args, line, want)
		}
	case <-time.After(patience):
		t.Fatalf("%v printed nothing in %v, want %q", p.cmd.Args, patience, want)
	}
}

func TestRunGivesCommandTheLockAndItsStatus(t *testing.T) {
	path := lockPath(t)
	cmd := exec.Command(binary, "run", path, "--", "sh", "-c",
		`cat "$0"; read line; echo "$line $FOO"; exit 3`, path)
	cmd.Env = append(os.Environ(), "FOO=from-env")
	p := start(t, cmd)
	fmt.Fprintln(p.stdin, "from-stdin")
	r := p.wait(t)
	// The content names lockfile, the holder, not COMMAND.
	r.check(t, 3, fmt.Sprintf(" %d\nfrom-stdin from-env\n", r.pid), "")
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

func TestRunWritesTemplate(t *testing.T) {
	path := lockPath(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	r := runLockfile(t, "run", "-t", "{pid};{hostname};{{cron}}", path, "--", "cat", path)
	r.check(t, 0, fmt.Sprintf(" %d;%s;{cron}\n", r.pid, host), "")
}

func TestRunRefusesHeldLock(t *testing.T) {
	path := lockPath(t)
	hold(t, path, "holder-1")
	marker := filepath.Join(filepath.Dir(path), "ran")
	for _, tc := range []struct {
		flags []string
		code  int
	}{{nil, 1}, {[]string{"-E", "75"}, 75}, {[]string{"-E", "0"}, 0}} {
		args := append(append([]string{"run"}, tc.flags...), path, "--", "touch", marker)
		runLockfile(t, args...).check(t, tc.code, "", "lockfile: "+path+" is held by holder-1\n")
	}
	assertMissing(t, marker)
	if data, err := os.ReadFile(path); err != nil || string(data) != " holder-1\n" {
		t.Fatalf("a refused run changed the lock file: %q, %v", data, err)
	}
}

func TestRunFailsWhenPathCannotBeOpened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "test.lock")
	runLockfile(t, "run", path, "--", "true").check(t, 125, "", "lockfile: open "+path+": no such file or directory\n")
	runLockfile(t, "run", t.TempDir(), "--", "true").check(t, 125, "", "is a directory")
}

func TestRunWaits(t *testing.T) {
	path := lockPath(t)
	l := hold(t, path, "holder-1")
	p := startLockfile(t, "run", "-w", "20s", path, "--", "cat", path)
	time.Sleep(300 * time.Millisecond)
	select {
	case line := <-p.lines:
		t.Fatalf("COMMAND ran while the lock was held: %q", line)
	default:
	}
	l.Close()
	r := p.wait(t)
	r.check(t, 0, fmt.Sprintf(" %d\n", r.pid), "")
}

func TestRunWaitTimesOut(t *testing.T) {
	path := lockPath(t)
	hold(t, path, "holder-1")
	began := time.Now()
	runLockfile(t, "run", "-w", "300ms", "-E", "3", path, "--", "true").
		check(t, 3, "", "lockfile: "+path+" is still held after 300ms by holder-1\n")
	if waited := time.Since(began); waited < 300*time.Millisecond {
		t.Fatalf("gave up after %v", waited)
	}
}

func TestRunCommandThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExecutable, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		code    int
		stderr  string
	}{
		{"no-such-command-here", 127, "lockfile: no-such-command-here: executable file not found in $PATH\n"},
		{filepath.Join(dir, "missing"), 127, "no such file or directory"},
		{notExecutable, 126, "permission denied"},
		{dir, 126, "is a directory"},
	} {
		path := filepath.Join(dir, "test.lock")
		runLockfile(t, "run", path, "--", tc.command).check(t, tc.code, "", tc.stderr)
		// Found out before the lock is taken, so nothing is created.
		assertMissing(t, path)
	}

	// An executable that the kernel cannot run is found out only when it
	// is started, under the lock.
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02\x03"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := lockPath(t)
	runLockfile(t, "run", path, "--", garbage).check(t, 126, "", "exec format error")
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

func TestRunCommandKilledBySignal(t *testing.T) {
	path := lockPath(t)
	runLockfile(t, "run", path, "--", "sh", "-c", "kill -KILL $$").check(t, 128+9, "", "")
	runLockfile(t, "run", path, "--", "sh", "-c", "kill -TERM $$").check(t, 128+15, "", "")
}

// signalScript traps signal $1 and, when it comes, asks lockfile ($2)
// whether the lock on $3 is still held, before it exits.
const signalScript = `trap 'echo "got $1"; "$2" status "$3" >/dev/null; echo "status $?"; exit 7' "$1"
echo ready
while :; do sleep 0.05; done`

func TestSignalsArePassedToCommand(t *testing.T) {
	for name, sig := range map[string]syscall.Signal{
		"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
	} {
		t.Run(name, func(t *testing.T) {
			path := lockPath(t)
			p := startLockfile(t, "run", path, "--", "sh", "-c", signalScript, "sh", name, binary, path)
			p.expect(t, "ready")
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			// "status 1": the lock was still held while COMMAND
			// handled the signal.
			p.wait(t).check(t, 7, "ready\ngot "+name+"\nstatus 1\n", "")
			runLockfile(t, "status", path).check(t, 0, "free\n", "")
		})
	}
	t.Run("untrapped", func(t *testing.T) {
		path := lockPath(t)
		p := startLockfile(t, "run", path, "--", "sh", "-c", "echo ready; exec sleep 30")
		p.expect(t, "ready")
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.wait(t).check(t, 128+15, "ready\n", "")
	})
}

func TestSignalWhileWaitingEndsLockfile(t *testing.T) {
	path := lockPath(t)
	l := hold(t, path, "holder-1")
	marker := filepath.Join(filepath.Dir(path), "ran")
	p := startLockfile(t, "run", "-w", "20s", path, "--", "touch", marker)
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	if ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("lockfile ended with %v, want death by SIGTERM", p.cmd.ProcessState)
	}
	l.Close()
	assertMissing(t, marker)
}

// processAlive reports whether pid is running, and ends it at cleanup.
func processAlive(t *testing.T, pid int) bool {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return syscall.Kill(pid, 0) == nil
}

func TestProcessesLeftByCommandDoNotHoldTheLock(t *testing.T) {
	path := lockPath(t)
	r := runLockfile(t, "run", path, "--", "sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!")
	var pid int
	if _, err := fmt.Sscan(r.stdout, &pid); err != nil || r.code != 0 {
		t.Fatalf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !processAlive(t, pid) {
		t.Fatal("the background process has gone already")
	}
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

func TestKillingLockfileReleasesTheLockWhileCommandRuns(t *testing.T) {
	path := lockPath(t)
	p := startLockfile(t, "run", path, "--", "sh", "-c", "echo $$; exec sleep 30 >/dev/null 2>&1")
	var pid int
	select {
	case line := <-p.lines:
		fmt.Sscan(line, &pid)
	case <-time.After(patience):
		t.Fatal("COMMAND did not start")
	}
	runLockfile(t, "status", path).check(t, 1, fmt.Sprintf("%d\n", p.cmd.Process.Pid), "")
	p.cmd.Process.Kill()
	p.wait(t)
	if !processAlive(t, pid) {
		t.Fatal("COMMAND has gone with lockfile")
	}
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

func TestFlockExcludedWhileRunHolds(t *testing.T) {
	needFlock(t)
	path := lockPath(t)
	p := startLockfile(t, "run", path, "--", "sh", "-c", "echo ready; read line; exit 0")
	p.expect(t, "ready")
	if err := exec.Command("flock", "-n", path, "true").Run(); err == nil {
		t.Fatal("flock -n took the lock that lockfile run holds")
	}
	// flock -w waits for the lock and gets it once COMMAND exits; the
	// content lockfile wrote is left in the file.
	waiting := start(t, exec.Command("flock", "-w", "20", path, "cat", path))
	time.Sleep(200 * time.Millisecond)
	lockfilePID := p.cmd.Process.Pid
	p.wait(t).check(t, 0, "ready\n", "")
	waiting.wait(t).check(t, 0, fmt.Sprintf(" %d\n", lockfilePID), "")
}

func TestRunExcludedWhileFlockHolds(t *testing.T) {
	needFlock(t)
	path := lockPath(t)
	holder := start(t, exec.Command("flock", path, "sh", "-c", "echo ready; read line; exit 0"))
	holder.expect(t, "ready")
	// flock(1) writes nothing, so the file names no holder.
	held := "lockfile: " + path + " is held; the file does not name the holder\n"
	runLockfile(t, "run", path, "--", "true").check(t, 1, "", held)
	runLockfile(t, "run", "-E", "9", path, "--", "true").check(t, 9, "", held)
	runLockfile(t, "status", path).check(t, 1, "\n", "does not name the holder")

	waiting := startLockfile(t, "run", "-w", "20s", path, "--", "cat", path)
	time.Sleep(200 * time.Millisecond)
	holder.wait(t).check(t, 0, "ready\n", "")
	r := waiting.wait(t)
	r.check(t, 0, fmt.Sprintf(" %d\n", r.pid), "")
}
