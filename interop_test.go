//go:build unix

package lockfile

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// The peers: Python's zc.lockfile, the reference, and util-linux flock(1).
// Both use flock(2), so each must exclude this package and the other way
// round, and zc.lockfile must read and write the same content.

// zcPeer is a small program around zc.lockfile. "hold" takes a LockFile and
// keeps it until stdin closes; "try" reports whether a LockFile can be taken
// and, if not, the holder's content, read as zc.lockfile's users do.
const zcPeer = `
import sys, zc.lockfile
mode, path, template = sys.argv[1:4]
try:
    lock = zc.lockfile.LockFile(path, content_template=template)
except zc.lockfile.LockError:
    with open(path) as f:
        f.seek(1)
        print("locked", f.read().strip(), flush=True)
    sys.exit(0)
print("locked" if mode == "hold" else "ok", flush=True)
if mode == "hold":
    sys.stdin.read()
lock.close()
`

func zcPython(t *testing.T) string {
	t.Helper()
	for _, python := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(python, "-c", "import zc.lockfile").Run() == nil {
			return python
		}
	}
	skipOrFail(t, "no python3 with zc.lockfile (apt-get install python3-zc.lockfile)")
	return ""
}

func startZC(t *testing.T, mode, path, template string) *helper {
	t.Helper()
	return startProcess(t, exec.Command(zcPython(t), "-c", zcPrelude+zcPeer, mode, path, template))
}

func TestInteropZCHoldsGoIsRefused(t *testing.T) {
	path := tempLockPath(t)
	// A longer old content must be cut off by zc.lockfile as by this package.
	writeFile(t, path, " 999999;an-old-and-long-host-name\n")
	zc := startZC(t, "hold", path, "{pid};{hostname}")
	zc.expect(t, "locked")
	content := strconv.Itoa(zc.cmd.Process.Pid) + ";" + hostname(t)
	if got := readFile(t, path); got != " "+content+"\n" {
		t.Fatalf("zc.lockfile wrote %q, want %q", got, " "+content+"\n")
	}
	assertLocked(t, path, content)
	if _, err := New(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("New while zc.lockfile holds the lock: %v", err)
	}
	if got := readFile(t, path); got != " "+content+"\n" {
		t.Fatalf("refused attempts changed zc.lockfile's content to %q", got)
	}
	zc.finish(t)
	l, err := New(path, WithContentTemplate("{pid};{hostname}"))
	if err != nil {
		t.Fatalf("lock not free after zc.lockfile closed it: %v", err)
	}
	defer l.Close()
	if got, want := readFile(t, path), " "+strconv.Itoa(os.Getpid())+";"+hostname(t)+"\n"; got != want {
		t.Fatalf("file holds %q, want %q", got, want)
	}
}

func TestInteropGoHoldsZCIsRefused(t *testing.T) {
	path := tempLockPath(t)
	host := hostname(t)
	for _, tt := range []struct {
		template string
		content  func(pid int) string
	}{
		{"{pid}", func(pid int) string { return strconv.Itoa(pid) }},
		{"{pid}/{hostname}", func(pid int) string { return strconv.Itoa(pid) + "/" + host }},
		{"{{literal}} {hostname}", func(int) string { return "{literal} " + host }},
	} {
		l, err := New(path, WithContentTemplate(tt.template))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readFile(t, path), " "+tt.content(os.Getpid())+"\n"; got != want {
			t.Fatalf("file holds %q for %q, want %q", got, tt.template, want)
		}
		if got := startZC(t, "try", path, "{pid}").expect(t, "locked"); got != l.Content() {
			t.Fatalf("zc.lockfile read holder %q, want %q", got, l.Content())
		}
		l.Close()
		// zc.lockfile writes the bytes this package writes for a template.
		zc := startZC(t, "hold", path, tt.template)
		zc.expect(t, "locked")
		if got, want := readFile(t, path), " "+tt.content(zc.cmd.Process.Pid)+"\n"; got != want {
			t.Fatalf("zc.lockfile wrote %q for %q, want %q", got, tt.template, want)
		}
		zc.finish(t)
	}
}

func TestInteropFlockCommand(t *testing.T) {
	flock := flockCommand(t)
	path := tempLockPath(t)
	l, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	const conflict = 75
	err = exec.Command(flock, "--nonblock", "--conflict-exit-code", strconv.Itoa(conflict), path, "true").Run()
	if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != conflict {
		t.Fatalf("flock(1) while this package holds the lock: %v, want exit code %d", err, conflict)
	}
	l.Close()
	if err := exec.Command(flock, "--nonblock", path, "true").Run(); err != nil {
		t.Fatalf("flock(1) after Close: %v", err)
	}

	holder := startProcess(t, exec.Command(flock, path, "sh", "-c", "echo locked; cat"))
	holder.expect(t, "locked")
	assertLocked(t, path, strconv.Itoa(os.Getpid()))
	holder.finish(t)
	assertFree(t, path)
}
