//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package lockfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// recordLocks is true: locks are POSIX record locks, which belong to the
// process. Peers must take those too, or they exclude nothing.
const recordLocks = true

func init() {
	readHeld = func(path string) (string, lockState) {
		lockTable()
		defer locks.Unlock()
		r := lockAtPath(path, true)
		switch {
		case r == nil:
			return "", free
		case r.state() == heldShared:
			return "", heldShared
		}
		buf := make([]byte, 1<<16)
		n, _ := sysFile{fd: r.fd}.readAt(buf, 0)
		return string(buf[:n]), heldExclusive
	}
}

// zcPrelude makes zc.lockfile take POSIX record locks, as CPython's
// fcntl.flock does where the system has no flock(2) (AIX, Solaris).
const zcPrelude = "import fcntl\nfcntl.flock = fcntl.lockf\n"

// flockCommand returns a stand-in for util-linux flock(1) built on POSIX
// record locks, which flock(1) has no mode for: testdata/lockf, built once
// per test process, without the race detector, so that the tests that start
// it hundreds of times stay fast.
func flockCommand(t *testing.T) string {
	t.Helper()
	lockf.once.Do(func() {
		dir, err := os.MkdirTemp("", "lockf-")
		if err != nil {
			lockf.err = err
			return
		}
		lockf.path = filepath.Join(dir, "lockf")
		out, err := exec.Command("go", "build", "-o", lockf.path, "./testdata/lockf").CombinedOutput()
		if err != nil {
			lockf.err = fmt.Errorf("building testdata/lockf: %v\n%s", err, out)
		}
	})
	if lockf.err != nil {
		t.Fatal(lockf.err)
	}
	return lockf.path
}

var lockf struct {
	once sync.Once
	path string
	err  error
}
