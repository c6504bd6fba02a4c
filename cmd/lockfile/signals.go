//go:build !js && !plan9

package main

import (
	"os"
	"syscall"
)

// forwarded are the signals passed on to COMMAND. SIGQUIT is among them
// because the Go runtime would otherwise answer it with a stack dump and an
// exit, releasing the lock while COMMAND runs. On Windows only the console's
// own events arrive, and they reach COMMAND without lockfile's help.
var forwarded = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// killedBy returns the number of the signal that ended a process, if one did.
func killedBy(ps *os.ProcessState) (int, bool) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return int(ws.Signal()), true
}
