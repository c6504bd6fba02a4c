//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"os"
	"path/filepath"
	"testing"
)

// recordLocks is true: locks are POSIX record locks, which belong to the
// process. Peers must take those too, or they exclude nothing.
const recordLocks = true

// zcPrelude makes zc.lockfile take POSIX record locks, as CPython's
// fcntl.flock does where the system has no flock(2) (AIX, Solaris).
const zcPrelude = "import fcntl\nfcntl.flock = fcntl.lockf\n"

// lockfCommand is a stand-in for util-linux flock(1) built on POSIX record
// locks: flock(1) has no such mode. It takes the options the tests use.
const lockfCommand = `#!/usr/bin/env python3
import fcntl, os, subprocess, sys
args, how, conflict = sys.argv[1:], fcntl.LOCK_EX, 1
while args[0].startswith("-"):
    opt = args.pop(0)
    if opt in ("-n", "--nonblock"):
        how |= fcntl.LOCK_NB
    elif opt in ("-E", "--conflict-exit-code"):
        conflict = int(args.pop(0))
fd = os.open(args.pop(0), os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.lockf(fd, how)
except OSError:
    sys.exit(conflict)
sys.exit(subprocess.call(args))
`

// flockCommand returns the stand-in for flock(1).
func flockCommand(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lockf")
	if err := os.WriteFile(path, []byte(lockfCommand), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
