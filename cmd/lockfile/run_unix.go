//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/internal/printable"
	"golang.org/x/sys/unix"
)

// runLocked hands the lock to COMMAND: it clears close-on-exec on the
// locked descriptor and replaces lockfile with COMMAND, which then holds
// the lock as lockfile did. The descriptor is the only one lockfile has
// open on the file, and it is not duplicated, so the lock survives the exec
// as flock(2) and fcntl(2) locks both do. runLocked returns only if the
// exec fails.
//
// COMMAND gets lockfile's signal mask, from which the runtime has removed
// the signals it must see (SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD,
// SIGURG and others): blocked when lockfile started, they are not blocked
// in COMMAND. Those it leaves alone, such as SIGUSR1, stay blocked.
func runLocked(lock *lockfile.SimpleLockFile, command string, argv []string) int {
	if _, err := unix.FcntlInt(lock.Fd(), unix.F_SETFD, 0); err != nil {
		lock.Close()
		fmt.Fprintf(os.Stderr, "lockfile: %s: clearing close-on-exec: %v\n", printable.Quote(lock.Path()), err)
		return exitFailed
	}
	err := execCommand(command, argv, lockEnv(lock))
	lock.Close()
	return commandFailed(argv[0], err)
}

// The variables that tell COMMAND which descriptor holds the lock, on
// which path, handed to which process: the package adopts the lock from
// them in a Go COMMAND, so that its own opens and closes keep a record
// lock. A shared lock's descriptor is open for reading only.
const (
	fdVar   = "LOCKFILE_FD"
	pathVar = "LOCKFILE_PATH"
	pidVar  = "LOCKFILE_PID"
)

// lockEnv is lockfile's environment with the lock's variables, which
// replace any it inherited: those of an outer lockfile run name its lock.
// The pid is lockfile's own, which COMMAND keeps across the exec.
func lockEnv(lock *lockfile.SimpleLockFile) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == fdVar || name == pathVar || name == pidVar
	})
	return append(env,
		fdVar+"="+strconv.FormatUint(uint64(lock.Fd()), 10),
		pathVar+"="+lock.Path(),
		pidVar+"="+strconv.Itoa(os.Getpid()))
}

// shell runs a COMMAND that the kernel cannot, as execvp does.
const shell = "/bin/sh"

// execCommand replaces lockfile with command as execvp(3) does, and
// returns only if that fails, with an error that names the missing file
// where it is not command itself.
func execCommand(command string, argv, env []string) error {
	err := syscall.Exec(command, argv, env)
	switch err {
	case syscall.ENOEXEC:
		// A file of no format the kernel knows is a shell script, unless it
		// is not text: a NUL in its first line, as a shell judges it,
		// marks a program for another system, which a shell would run as
		// commands.
		if head := fileHead(command); bytes.IndexByte(firstLine(head), 0) >= 0 {
			return err
		}
		if err := syscall.Exec(shell, append([]string{shell, command}, argv[1:]...), env); err != nil {
			return fmt.Errorf("%s: %w", shell, err)
		}
	case syscall.ENOENT:
		// command was found, so what is missing may be the interpreter
		// that its "#!" line names.
		if interp := interpreter(fileHead(command)); interp != "" {
			if _, statErr := os.Stat(interp); errors.Is(statErr, fs.ErrNotExist) {
				return fmt.Errorf("interpreter %s: %w", printable.Quote(interp), err)
			}
		}
	}
	return err
}

// fileHead is as much of the start of the file as the kernel reads for a
// "#!" line, or less if the file is shorter or cannot be read.
func fileHead(name string) []byte {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	return head[:n]
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// interpreter is the program that a "#!" line at the start of head names,
// or "" if there is none.
func interpreter(head []byte) string {
	rest, ok := bytes.CutPrefix(firstLine(head), []byte("#!"))
	if !ok {
		return ""
	}
	fields := bytes.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return ""
	}
	return string(fields[0])
}
