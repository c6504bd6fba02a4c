//go:build !unix

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// execEtcd runs the program at path as a child, this system having no exec,
// and returns its exit status.
func execEtcd(path string, argv []string) int {
	cmd := &exec.Cmd{Path: path, Args: argv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		fmt.Fprintf(os.Stderr, "lockfile: %s: %v\n", path, err)
		return exitFailed
	}
	return cmd.ProcessState.ExitCode()
}
