//go:build aix || solaris || linux

// Command lockf is the tests' stand-in for util-linux flock(1) on POSIX
// record locks, which flock(1) has no mode for (see backend_fcntl_test.go).
// It takes the options the tests use: [-n|--nonblock] [-s|--shared]
// [-E|--conflict-exit-code N] PATH COMMAND [ARG...].
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func main() { os.Exit(runLockf(os.Args[1:])) }

// runLockf takes the lock and runs the command.
func runLockf(args []string) int {
	cmd, typ, conflict := unix.F_SETLKW, int16(unix.F_WRLCK), 1
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch opt := args[0]; opt {
		case "-n", "--nonblock":
			cmd = unix.F_SETLK
		case "-s", "--shared":
			typ = unix.F_RDLCK
		case "-E", "--conflict-exit-code":
			args = args[1:]
			conflict, _ = strconv.Atoi(args[0])
		}
		args = args[1:]
	}
	fd, err := unix.Open(args[0], unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockf:", err)
		return 1
	}
	lk := unix.Flock_t{Type: typ}
	for {
		err = unix.FcntlFlock(uintptr(fd), cmd, &lk)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == unix.EAGAIN || err == unix.EACCES:
		return conflict
	case err != nil:
		fmt.Fprintln(os.Stderr, "lockf:", err)
		return 1
	}
	c := exec.Command(args[1], args[2:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		if exitErr, ok := err.(*exec.ExitError); ok {
			return exitErr.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "lockf:", err)
		return 1
	}
	return 0
}
