//go:build unix

package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
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
		fmt.Fprintf(os.Stderr, "lockfile: %s: clearing close-on-exec: %v\n", lock.Path(), err)
		return exitFailed
	}
	err := syscall.Exec(command, argv, os.Environ())
	lock.Close()
	return commandFailed(argv[0], err)
}

// caughtSignals are the signals that end a program by default but that the
// Go runtime answers otherwise, with a stack dump (SIGQUIT, SIGABRT,
// SIGTRAP...) or not at all (SIGUSR1, SIGPIPE...). SIGHUP, SIGINT and
// SIGTERM are not among them: the runtime dies of those itself. Nor is
// SIGPROF, which the runtime keeps for its profiler.
func caughtSignals() []syscall.Signal {
	return append([]syscall.Signal{
		syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT, syscall.SIGBUS,
		syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSYS, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
	}, osCaughtSignals()...)
}

// catchSignals returns the channel on which the caught signals arrive
// until lockfile execs COMMAND, leaving those that were ignored at start
// ignored.
//
// The runtime keeps SIGHUP and SIGINT ignored if they were ignored at
// start, and leaves the job control signals alone, but replaces every
// other signal's disposition with its own handler without saying what it
// was; at exec, a handled signal goes back to its default. A shell starts
// a background job with SIGINT and SIGQUIT ignored, so SIGQUIT is ignored
// whenever SIGINT is.
func catchSignals() <-chan os.Signal {
	if signal.Ignored(syscall.SIGINT) {
		signal.Ignore(syscall.SIGQUIT)
	}
	var sigs []os.Signal
	for _, sig := range caughtSignals() {
		if !signal.Ignored(sig) {
			sigs = append(sigs, sig)
		}
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, sigs...)
	return c
}

// dieOf ends lockfile by sig, as sig ends a program that does not catch it,
// so that a shell sees the death by sig that COMMAND would have shown. The
// runtime has no way to give a signal back its default action, but exec
// does: lockfile becomes kill(1), which sends sig to itself, to the same
// process. If kill cannot be run, dieOf returns 128+sig, the status a shell
// gives a death by sig.
func dieOf(sig os.Signal) int {
	n := int(sig.(syscall.Signal))
	argv := []string{"kill", "-" + strconv.Itoa(n), strconv.Itoa(os.Getpid())}
	for _, kill := range []string{"/bin/kill", "/usr/bin/kill"} {
		syscall.Exec(kill, argv, nil)
	}
	return 128 + n
}
