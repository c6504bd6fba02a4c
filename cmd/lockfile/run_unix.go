//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/golockfile/lockfile"
	"golang.org/x/sys/unix"
)

// runLocked hands the lock to COMMAND: it clears close-on-exec on the
// locked descriptor and replaces lockfile with COMMAND, which then holds
// the lock as lockfile did. The descriptor is the only one lockfile has
// open on the file, and it is not duplicated, so the lock survives the exec
// as flock(2) and fcntl(2) locks both do. runLocked returns only if the
// exec fails.
//
// COMMAND gets lockfile's signal mask, from which the runtime has removed
// the signals it must see (SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD,
// SIGURG and others): blocked when lockfile started, they are not blocked
// in COMMAND. Those it leaves alone, such as SIGUSR1, stay blocked.
func runLocked(lock *lockfile.SimpleLockFile, command string, argv []string) int {
	if _, err := unix.FcntlInt(lock.Fd(), unix.F_SETFD, 0); err != nil {
		lock.Close()
		fmt.Fprintf(os.Stderr, "lockfile: %s: clearing close-on-exec: %v\n", quoted(lock.Path()), err)
		return exitFailed
	}
	err := syscall.Exec(command, argv, os.Environ())
	lock.Close()
	return commandFailed(argv[0], err)
}
