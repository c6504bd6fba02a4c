//go:build unix && !aix && !(solaris && !illumos) && !(linux && lockfile_fcntl)

package lockfile

import (
	"os/exec"
	"testing"
)

// recordLocks is false: locks are flock(2)'s, which belong to the open file.
const recordLocks = false

// zcPrelude runs before zc.lockfile's peers; zc.lockfile takes flock(2)
// locks already.
const zcPrelude = ""

// flockCommand returns util-linux flock(1).
func flockCommand(t *testing.T) string {
	t.Helper()
	flock, err := exec.LookPath("flock")
	if err != nil {
		skipOrFail(t, "no flock(1) (apt-get install util-linux)")
	}
	return flock
}
