//go:build unix

package main

import (
	"os"
	"syscall"

	"github.com/golockfile/lockfile/internal/cli"
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

// catchSignals returns the channel on which the caught signals arrive, as
// cli.CatchSignals does.
func catchSignals() <-chan os.Signal { return cli.CatchSignals(caughtSignals(), 1) }

// dieOf ends lockfile by sig, as cli.DieOf does.
func dieOf(sig os.Signal) int { return cli.DieOf(sig) }
