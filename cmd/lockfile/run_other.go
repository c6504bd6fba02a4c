//go:build !unix && !windows

package main

import (
	"fmt"
	"os"

	"github.com/golockfile/lockfile"
)

// These platforms have no file locks: every lock fails with
// errors.ErrUnsupported before COMMAND could run. This keeps the command
// compiling there, as the package does.

func runLocked(lock *lockfile.SimpleLockFile, command string, argv []string) int {
	lock.Close()
	fmt.Fprintf(os.Stderr, "lockfile: %s: cannot run COMMAND on this system\n", argv[0])
	return exitFailed
}

func catchSignals() <-chan os.Signal { return nil }

func dieOf(os.Signal) int { return exitFailed }
