package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/internal/cli"
	"github.com/golockfile/lockfile/internal/printable"
)

const runHelp = `
Take the lock on PATH, creating the file if it does not exist, write the
expanded TEMPLATE into it, and run COMMAND with the lock held. Options go
before PATH; "--" before COMMAND is needed only if COMMAND starts with "-".
If the lock is held, name the holder on standard error and exit with
status CODE, without running COMMAND.

Options:
%s
On Unix, lockfile becomes COMMAND, as flock -F does: it execs COMMAND in
its own process, so {pid} is COMMAND's process id too, and every signal,
a ^C included, reaches COMMAND alone, once. No process of lockfile's is
left, so nothing watches for the lock file's removal. COMMAND is found
and run as execvp(3) does: a text file without "#!" runs with /bin/sh.

COMMAND inherits the lock file open on descriptor $LOCKFILE_FD, with
LOCKFILE_PATH set to PATH and LOCKFILE_PID to COMMAND's process id; a
nested lockfile run sets its own, naming the inner lock. The lock is held
until COMMAND and every process that inherited the descriptor (a daemon
it starts, say) have exited or closed it, as with flock(1). A script
that reuses the number (exec 3>file when LOCKFILE_FD is 3) drops the
lock. Record locks (AIX, Solaris, -tags lockfile_fcntl) belong to
COMMAND's process, and a close of any descriptor of the file drops them:
a COMMAND that opens and closes the file itself (a shell's read x <PATH)
drops the lock, unless it is a Go program using the package, which reads
these variables; under a nested run those name the inner lock alone, and
the outer one is dropped by such a program's open and close of its file.

Signals ignored when lockfile starts stay ignored in COMMAND where Go lets
a program know of them: SIGHUP (nohup), SIGINT, and with it SIGQUIT, as a
shell ignores both for a background job, and the job control signals.
Others, such as SIGTERM or SIGPIPE, are at their default. While lockfile
waits for the lock, a signal that would end COMMAND ends lockfile in the
same way, and COMMAND is not run.

On Windows, lockfile runs COMMAND as its child and exits with its status.
COMMAND, and every process it starts, ends when lockfile ends, even if
lockfile is killed; the lock may then be free for an instant before they
have ended. A console's ^C reaches COMMAND directly.

Exit status:
  CODE    the lock is held (with -w: still held when the wait ended)
  2       usage error, COMMAND not run
  125     lockfile failed, e.g. it could not open or lock PATH
  126     COMMAND was found but cannot be executed
  127     COMMAND was not found
  other   COMMAND's own: its exit status, or its death by a signal
`

// runConfig is what run's flags set.
type runConfig struct {
	wait     time.Duration // 0: do not wait
	forever  bool          // wait without limit
	template string
	heldCode int
	verbose  bool
	shared   bool
	tflag    bool // -t was given
}

// runFlags returns run's flag set, which fills in c, after setting c to
// the defaults.
func runFlags(c *runConfig) *flag.FlagSet {
	*c = runConfig{template: "{pid}", heldCode: 1}
	flags := flag.NewFlagSet("run", flag.ContinueOnError)
	flags.Func("E", "exit with status `CODE`, 0 to 255, if the lock is held (default 1)",
		func(s string) (err error) {
			c.heldCode, err = cli.ExitStatus(s)
			return err
		})
	flags.Func("t", "write `TEMPLATE` into PATH: {pid} is the process id, {hostname}\n"+
		"the host name, {{ and }} are braces (default \"{pid}\")",
		func(s string) error {
			if err := cli.CheckTemplate(s); err != nil {
				return err
			}
			c.template, c.tflag = s, true
			return nil
		})
	flags.BoolVar(&c.shared, "s", false,
		"take a shared lock, which others may share and an exclusive lock\n"+
			"excludes; it writes no content, so -t cannot go with it")
	flags.BoolVar(&c.verbose, "v", false,
		"say on standard error whom it waits for, and how long it waited")
	flags.Func("w", "wait up to `DURATION` for a held lock: seconds (10, .5), a Go\n"+
		"duration (1m30s), or inf for no limit (default 0: do not wait)",
		func(s string) (err error) {
			c.wait, c.forever, err = parseWait(s)
			return err
		})
	return flags
}

// parseWait reads -w's value: a number of seconds, as flock(1) takes it, a
// Go duration, or inf.
func parseWait(s string) (wait time.Duration, forever bool, err error) {
	const longest = time.Duration(math.MaxInt64)
	tooLong := fmt.Errorf("longer than the longest wait, %v; use inf to wait without limit", longest)
	if secs, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case math.IsNaN(secs):
			return 0, false, errors.New("not a number of seconds")
		case secs < 0:
			return 0, false, errors.New("a negative wait; use 0 not to wait, inf to wait without limit")
		case math.IsInf(secs, 1) && err == nil:
			return 0, true, nil
		case secs*float64(time.Second) >= float64(longest):
			return 0, false, tooLong
		}
		return time.Duration(math.Round(secs * float64(time.Second))), false, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && durationSyntax(s):
		return 0, false, tooLong
	case err != nil:
		return 0, false, errors.New("not a wait; give seconds (10, .5), a duration (1m30s) or inf")
	case d < 0:
		return 0, false, errors.New("a negative wait; use 0 not to wait, inf to wait without limit")
	}
	return d, false, nil
}

// durationSyntax reports whether s is written as a Go duration, such as
// 1h30m, whatever its size: time.ParseDuration gives the same error for a
// duration too long to hold as for a word.
func durationSyntax(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	isNumber := func(r rune) bool { return '0' <= r && r <= '9' || r == '.' }
	if s == "" {
		return false
	}
	for s != "" {
		end := strings.IndexFunc(s, func(r rune) bool { return !isNumber(r) })
		if end <= 0 || s[:end] == "." || strings.Count(s[:end], ".") > 1 {
			return false // no number, or no unit after it
		}
		s = s[end:]
		if end = strings.IndexFunc(s, isNumber); end < 0 {
			end = len(s)
		}
		switch s[:end] {
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
		default:
			return false
		}
		s = s[end:]
	}
	return true
}

func run(args []string) int {
	var c runConfig
	flags := runFlags(&c)
	if exit, ok := parseFlags(flags, args, runHelp); !ok {
		return exit
	}
	args = flags.Args()
	if len(args) == 0 {
		return usageError(flags, "no PATH given")
	}
	path, argv := args[0], args[1:]
	switch {
	case len(argv) > 0 && argv[0] == "--":
		argv = argv[1:]
	case len(argv) > 0 && len(argv[0]) > 1 && argv[0][0] == '-':
		return usageError(flags, fmt.Sprintf(
			"%s after PATH: options go before PATH (and -- before a COMMAND that starts with -)",
			printable.Quote(argv[0])))
	}
	if len(argv) == 0 {
		return usageError(flags, "no COMMAND given")
	}
	if c.shared && c.tflag {
		return usageError(flags, "-t with -s: a shared lock writes no content")
	}

	// A COMMAND that is missing or not executable is reported before the
	// lock file is created or written.
	command, err := findCommand(argv[0])
	if err != nil {
		return commandFailed(argv[0], err)
	}
	// Like status, run locks only a regular file, even for a shared lock,
	// which the package takes on whatever it finds.
	if info, err := os.Stat(path); err == nil && !info.Mode().IsRegular() {
		return failed(path, &fs.PathError{Op: "open", Path: path, Err: lockfile.ErrNotRegular})
	}
	signals := catchSignals()
	taken := make(chan lockResult, 1)
	go func() {
		l, err := takeLock(path, c)
		taken <- lockResult{l, err}
	}()
	// A signal that comes in the instant between the lock and the exec is
	// lost: caught here, and not yet COMMAND's.
	var r lockResult
	select {
	case sig := <-signals:
		return dieOf(sig)
	case r = <-taken:
	}
	var lockErr *lockfile.LockError
	switch {
	case errors.As(r.err, &lockErr):
		fmt.Fprintf(os.Stderr, "lockfile: %s is %s\n", printable.Quote(path), heldBy(lockErr, c.wait))
		return c.heldCode
	case r.err != nil:
		return failed(path, r.err)
	}
	return runLocked(r.lock, command, argv)
}

// findCommand finds COMMAND as a shell does: in PATH unless name has a
// slash, relative entries of PATH included, which the user put there (a
// command found through "." is ./name). Windows looks in the current
// directory unasked, which Go refuses there, as PowerShell does.
func findCommand(name string) (string, error) {
	command, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) && runtime.GOOS != "windows" {
		if !strings.Contains(command, "/") {
			command = "./" + command
		}
		return command, nil
	}
	return command, err
}

type lockResult struct {
	lock *lockfile.SimpleLockFile
	err  error
}

// takeLock takes the lock without waiting, or waits for it as c says.
func takeLock(path string, c runConfig) (*lockfile.SimpleLockFile, error) {
	began := time.Now()
	l, err := lockNow(path, c)
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) && (c.wait > 0 || c.forever) {
		if c.verbose {
			limit := ""
			if !c.forever {
				limit = " up to " + c.wait.String()
			}
			fmt.Fprintf(os.Stderr, "lockfile: %s is %s; waiting%s\n",
				printable.Quote(path), heldBy(lockErr, 0), limit)
		}
		ctx := context.Background()
		if !c.forever {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.wait-time.Since(began))
			defer cancel()
		}
		l, err = lockWait(ctx, path, c)
	}
	if err == nil && c.verbose {
		fmt.Fprintf(os.Stderr, "lockfile: locked %s after %v\n",
			printable.Quote(path), time.Since(began).Round(time.Millisecond))
	}
	return l, err
}

// lockNow takes the lock that c asks for without waiting.
func lockNow(path string, c runConfig) (*lockfile.SimpleLockFile, error) {
	if c.shared {
		return lockfile.NewShared(path)
	}
	l, err := lockfile.New(path, lockfile.WithContentTemplate(c.template))
	if err != nil {
		return nil, err
	}
	return &l.SimpleLockFile, nil
}

// lockWait takes the lock that c asks for, waiting until ctx ends.
func lockWait(ctx context.Context, path string, c runConfig) (*lockfile.SimpleLockFile, error) {
	if c.shared {
		return lockfile.AcquireShared(ctx, path)
	}
	l, err := lockfile.Acquire(ctx, path, lockfile.WithContentTemplate(c.template))
	if err != nil {
		return nil, err
	}
	return &l.SimpleLockFile, nil
}

// heldBy says who holds the lock, after a wait of the given length.
func heldBy(lockErr *lockfile.LockError, waited time.Duration) string {
	state := "held"
	if waited > 0 {
		state = "still held after " + waited.String()
	}
	holder := lockErr.Holder
	switch {
	case lockErr.Shared:
		return state + " by shared holders"
	case holder == "":
		return state + "; the file does not name the holder"
	}
	return fmt.Sprintf("%s by %s", state, printable.Escape(holder))
}

// commandFailed reports a COMMAND that could not be started, with the
// shell's statuses: 127 when there is no such file, 126 when there is one
// that cannot be executed.
func commandFailed(name string, err error) int {
	// The name is said once, as a shell says it, not inside Go's wrapping.
	var execErr *exec.Error
	if errors.As(err, &execErr) {
		err = execErr.Err
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err
	}
	fmt.Fprintf(os.Stderr, "lockfile: %s: %v\n", printable.Quote(name), err)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return exitNoExec
}
