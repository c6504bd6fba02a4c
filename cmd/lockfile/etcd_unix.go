//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// execEtcd replaces lockfile with the program at path, so that it has
// lockfile's process id and gets the signals sent to lockfile.
func execEtcd(path string, argv []string) int {
	err := syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "lockfile: %s: %v\n", path, err)
	return exitFailed
}
