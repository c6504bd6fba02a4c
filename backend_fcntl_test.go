//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// recordLocks is true: locks are POSIX record locks, which belong to the
// process. Peers must take those too, or they exclude nothing.
const recordLocks = true

// zcPrelude makes zc.lockfile take POSIX record locks, as CPython's
// fcntl.flock does where the system has no flock(2) (AIX, Solaris).
const zcPrelude = "import fcntl\nfcntl.flock = fcntl.lockf\n"

// lockfEnv makes the test binary a stand-in for util-linux flock(1) built
// on POSIX record locks, which flock(1) has no mode for. It takes the
// options the tests use: [-n|--nonblock] [-s|--shared] [-E|--conflict-exit-code N] PATH
// COMMAND [ARG...].
const lockfEnv = "LOCKFILE_TEST_LOCKF"

// flockCommand returns the stand-in for flock(1).
func flockCommand(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lockf")
	script := "#!/bin/sh\n" + lockfEnv + "=1 exec '" + exe + "' \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func init() {
	if os.Getenv(lockfEnv) != "" {
		os.Exit(runLockf(os.Args[1:]))
	}
}

// runLockf is the stand-in's main.
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
