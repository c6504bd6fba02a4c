//go:build unix

package cli

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// CatchSignals returns a channel, buffered as given, on which sigs arrive,
// but those ignored at start, which stay ignored. A shell starts a
// background job with SIGINT and SIGQUIT ignored, and the runtime does not
// say whether SIGQUIT was, so it is ignored whenever SIGINT is. A command
// it execs, or starts, inherits what is ignored.
func CatchSignals(sigs []syscall.Signal, buffer int) <-chan os.Signal {
	if signal.Ignored(syscall.SIGINT) {
		signal.Ignore(syscall.SIGQUIT)
	}
	var caught []os.Signal
	for _, sig := range sigs {
		if !signal.Ignored(sig) {
			caught = append(caught, sig)
		}
	}
	c := make(chan os.Signal, buffer)
	signal.Notify(c, caught...)
	return c
}

// DieOf ends the process by sig, as sig ends a program that does not catch
// it, so that a shell sees the death by sig that COMMAND would have shown.
// The runtime has no way to give a signal back its default action, but
// exec does: the process becomes kill(1), which sends sig to itself. If
// kill cannot be run, DieOf returns 128+sig, the status a shell gives a
// death by sig.
func DieOf(sig os.Signal) int {
	n := int(sig.(syscall.Signal))
	argv := []string{"kill", "-" + strconv.Itoa(n), strconv.Itoa(os.Getpid())}
	for _, kill := range []string{"/bin/kill", "/usr/bin/kill"} {
		syscall.Exec(kill, argv, nil)
	}
	return 128 + n
}
