//go:build unix

package main

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

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
