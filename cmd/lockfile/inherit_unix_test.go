//go:build unix

package main

import (
	"strings"
	"testing"
)

// A COMMAND that asks about the lock it was handed sees it held, by the
// holder run wrote, and cannot take it a second time. Where locks belong
// to the process, the COMMAND is the holder: without the variables run
// sets, its status would say free, and its open and close of the file
// would drop the lock.
func TestCommandSeesTheLockItInherits(t *testing.T) {
	path := lockPath(t)
	runLockfile(t, "run", "-t", "outer", path, binary, "status", path).check(t, 1, "outer\n", "")
	runLockfile(t, "run", "-t", "outer", path, binary, "run", path, "true").
		check(t, 1, "", "held by outer")

	// A child of COMMAND that asks, another process, drops nothing either:
	// the lock is held for the rest of COMMAND's life.
	p := startLockfile(t, "run", "-t", "outer", path, "sh", "-c",
		strings.Join([]string{`"$0" status "$1" >/dev/null`, `echo asked`, `read x`, `exit 0`}, "; "), binary, path)
	if line := <-p.lines; line != "asked" {
		t.Fatalf("COMMAND said %q", line)
	}
	runLockfile(t, "status", path).check(t, 1, "outer\n", "")
	runLockfile(t, "run", path, "true").check(t, 1, "", "held by outer")
	p.stdin.Close()
	p.wait(t).check(t, 0, "", "")
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}
