package main

import "syscall"

// osCaughtSignals are Linux's own signals that end a program by default:
// SIGIO, SIGPWR, and the real-time signals that the C library leaves to
// programs (from 35; glibc and musl take 32 to 34).
func osCaughtSignals() []syscall.Signal {
	sigs := []syscall.Signal{syscall.SIGIO, syscall.SIGPWR}
	for sig := syscall.Signal(35); sig <= 64; sig++ {
		sigs = append(sigs, sig)
	}
	return sigs
}
