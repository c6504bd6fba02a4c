//go:build unix && !linux

package main

import "syscall"

// osCaughtSignals are the signals of this system beyond POSIX's that end a
// program by default.
func osCaughtSignals() []syscall.Signal { return []syscall.Signal{syscall.SIGEMT} }
