//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/golockfile/lockfile/internal/printable"
	"golang.org/x/sys/unix"
)

// writeScript writes an executable file into dir.
func writeScript(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// An executable file without "#!" that is text runs with /bin/sh, as
// execvp(3), env(1) and flock(1) run it, holding the lock.
func TestScriptWithoutInterpreterLineRunsWithSh(t *testing.T) {
	dir := testDir(t)
	script := writeScript(t, dir, "script", `echo "args: $*"; "$1" status "$2"; exit 4`+"\n")
	path := filepath.Join(dir, "test.lock")
	r := runLockfile(t, "run", path, script, binary, path)
	r.check(t, 4, fmt.Sprintf("args: %s %s\n%d\n", binary, path, r.pid), "")
}

// A command found through "." or an empty entry in PATH runs, as a shell
// runs it.
func TestCommandFoundThroughDotInPathRuns(t *testing.T) {
	for _, dirs := range []string{".", ""} {
		t.Run(fmt.Sprintf("%q", dirs), func(t *testing.T) {
			dir := testDir(t)
			writeScript(t, dir, "lockfile-test-command", "#!/bin/sh\necho \"ran $0 $1\"\n")
			cmd := exec.Command(binary, "run", "test.lock", "lockfile-test-command", "arg")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+dirs)
			r := start(t, cmd).wait(t)
			r.check(t, 0, "ran ./lockfile-test-command arg\n", "")
		})
	}
}

// A script whose interpreter is missing is reported by the interpreter's
// name, with the status of a command not found.
func TestMissingInterpreterIsNamed(t *testing.T) {
	dir := testDir(t)
	path := filepath.Join(dir, "test.lock")
	for interp, line := range map[string]string{
		"/no/such/interpreter":  "#!/no/such/interpreter -x\n",
		"/no/such/interpreter2": "#! /no/such/interpreter2\n",
		"/bin/sh\r":             "#!/bin/sh\r\necho written on Windows\r\n",
	} {
		script := writeScript(t, dir, "script", line)
		runLockfile(t, "run", path, script).check(t, 127, "", fmt.Sprintf(
			"lockfile: %s: interpreter %s: no such file or directory\n", script, printable.Quote(interp)))
	}
	runLockfile(t, "status", path).check(t, 0, "free\n", "")
}

// lockVarsHelperEnv makes the test binary a COMMAND that prints the lock
// variables it was given, and what it finds at them.
const lockVarsHelperEnv = "LOCKFILE_CMD_TEST_LOCK_VARS"

func init() {
	if os.Getenv(lockVarsHelperEnv) != "" {
		printLockVars()
		os.Exit(0)
	}
}

// printLockVars prints every LOCKFILE_FD, LOCKFILE_PATH and LOCKFILE_PID
// entry of the environment, its own pid, and whether the descriptor is
// open on the file at the path, for reading and writing or for reading
// only.
func printLockVars() {
	for _, kv := range os.Environ() {
		for _, name := range []string{"LOCKFILE_FD=", "LOCKFILE_PATH=", "LOCKFILE_PID="} {
			if strings.HasPrefix(kv, name) {
				fmt.Println(kv)
			}
		}
	}
	fmt.Println("pid", os.Getpid())
	fd, err := strconv.Atoi(os.Getenv("LOCKFILE_FD"))
	var fdStat, pathStat syscall.Stat_t
	switch {
	case err != nil:
		fmt.Println("descriptor:", err)
	case syscall.Fstat(fd, &fdStat) != nil:
		fmt.Println("descriptor: not open")
	case syscall.Stat(os.Getenv("LOCKFILE_PATH"), &pathStat) != nil ||
		fdStat.Dev != pathStat.Dev || fdStat.Ino != pathStat.Ino:
		fmt.Println("descriptor: not the file at the path")
	default:
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		modes := map[int]string{unix.O_RDONLY: "read-only", unix.O_RDWR: "read-write"}
		fmt.Println("descriptor: the file at the path,", modes[flags&unix.O_ACCMODE], err)
	}
}

// run tells COMMAND which descriptor holds the lock, on which path, and
// that COMMAND's process holds it: a shared lock's descriptor is open for
// reading only. The variables replace inherited ones, a nested run's
// among them.
func TestRunSetsTheLockVariables(t *testing.T) {
	dir := testDir(t)
	outer := filepath.Join(dir, "outer.lock")
	for _, tc := range []struct {
		name string
		args []string
		path string // as given to the run that COMMAND sees
		mode string
	}{
		{"exclusive", []string{"run", outer}, outer, "read-write"},
		{"shared", []string{"run", "-s", outer}, outer, "read-only"},
		{"relative", []string{"run", "test.lock"}, "test.lock", "read-write"},
		{"nested", []string{"run", outer, binary, "run", "-s", "inner.lock"}, "inner.lock", "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, append(tc.args, os.Args[0])...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), lockVarsHelperEnv+"=1",
				"LOCKFILE_FD=0", "LOCKFILE_PATH=/inherited", "LOCKFILE_PID=1")
			r := start(t, cmd).wait(t)
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if r.code != 0 || len(lines) != 5 {
				t.Fatalf("status %d, stdout %q, stderr %q; want the three variables once each",
					r.code, r.stdout, r.stderr)
			}
			fd, fdErr := strconv.Atoi(strings.TrimPrefix(lines[0], "LOCKFILE_FD="))
			want := []string{
				fmt.Sprintf("LOCKFILE_FD=%d", fd),
				"LOCKFILE_PATH=" + tc.path,
				fmt.Sprintf("LOCKFILE_PID=%d", r.pid),
				fmt.Sprintf("pid %d", r.pid),
				"descriptor: the file at the path, " + tc.mode + " <nil>",
			}
			if fdErr != nil || fd < 3 || strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Fatalf("COMMAND printed\n%s\nwant\n%s\nwith a descriptor above 2",
					r.stdout, strings.Join(want, "\n"))
			}
		})
	}
}

// run -h names the variables that run sets.
func TestRunHelpNamesTheLockVariables(t *testing.T) {
	r := runLockfile(t, "run", "-h")
	for _, name := range []string{fdVar, pathVar, pidVar} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("run -h does not name %s", name)
		}
	}
}
