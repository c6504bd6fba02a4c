//go:build unix && !aix && !(solaris && !illumos) && !(linux && lockfile_fcntl)

package main

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// util-linux flock(1) takes flock(2) locks, which exclude the command's
// only where the library takes them too.

func TestFlockExcludedWhileRunHolds(t *testing.T) {
	needProgram(t, "flock")
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
	needProgram(t, "flock")
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
