package main

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// startHelper runs lockfile run on path with the test binary as COMMAND,
// which exits with status code once its stdin ends, and returns the
// running lockfile and COMMAND's pid.
func startHelper(t *testing.T, path string, code int) (*proc, int) {
	t.Helper()
	cmd := exec.Command(binary, "run", path, os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", helperEnv, code))
	p := start(t, cmd)
	select {
	case line := <-p.lines:
		var pid int
		if _, err := fmt.Sscanf(line, "ready %d", &pid); err != nil {
			t.Fatalf("COMMAND printed %q", line)
		}
		return p, pid
	case <-time.After(patience):
		t.Fatalf("COMMAND did not start in %v; stderr %q", patience, p.stderr.String())
	}
	return nil, 0
}

func TestRunHoldsTheLockAndPassesTheStatus(t *testing.T) {
	path := lockPath(t)
	p, _ := startHelper(t, path, 7)
	r := runLockfile(t, "status", path)
	if r.code != 1 || r.stdout != fmt.Sprintf("%d\n", p.cmd.Process.Pid) {
		t.Fatalf("status while COMMAND runs: %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if r := p.wait(t); r.code != 7 {
		t.Fatalf("lockfile exited with %d, stderr %q; want COMMAND's 7", r.code, r.stderr)
	}
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

// COMMAND runs in a job that ends with lockfile, so that it does not run
// on without the lock.
func TestKillingLockfileEndsCommand(t *testing.T) {
	path := lockPath(t)
	p, pid := startHelper(t, path, 0)
	command, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(command)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	event, err := windows.WaitForSingleObject(command, uint32(patience/time.Millisecond))
	if event != windows.WAIT_OBJECT_0 {
		t.Fatalf("COMMAND still runs %v after lockfile was killed (%#x, %v)", patience, event, err)
	}
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}
