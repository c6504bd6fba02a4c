// Command lockfile runs a command under a lock file from the shell, and says
// who holds a lock.
//
// It takes the same lock as the Go package github.com/golockfile/lockfile,
// Python's zc.lockfile and util-linux flock(1), and writes its holder into
// the file in the same format as the package and zc.lockfile, so shell
// scripts, cron jobs and services exclude each other and can tell who runs.
//
// Usage:
//
//	lockfile run [-w DURATION] [-t TEMPLATE] [-E CODE] PATH -- COMMAND [ARG...]
//	lockfile status PATH
//
// Run "lockfile -h", "lockfile run -h" or "lockfile status -h" for the rest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"time"

	"github.com/golockfile/lockfile"
)

// Exit statuses of lockfile's own. A command's status is passed through, so
// these follow the shell's and GNU env(1)'s conventions to stay apart from
// the statuses most commands use.
const (
	exitUsage    = 2
	exitFailed   = 125 // lockfile itself failed, e.g. could not open PATH
	exitNoExec   = 126 // COMMAND was found but could not be executed
	exitNotFound = 127 // COMMAND was not found
)

const synopsis = `usage: lockfile run [-w DURATION] [-t TEMPLATE] [-E CODE] PATH -- COMMAND [ARG...]
       lockfile status PATH
`

const mainHelp = synopsis + `
lockfile takes an exclusive lock on the file PATH: the lock that the Go
package github.com/golockfile/lockfile, Python's zc.lockfile and util-linux
flock(1) take. It writes who holds the lock into the file, as the package
and zc.lockfile do, and reads it back for whoever is refused.

Commands:
  run     run COMMAND while holding the lock
  status  say whether the lock is held, and by whom, without taking it

Run 'lockfile run -h' or 'lockfile status -h' for their options and exit
statuses. Usage errors exit with status 2.
`

const runSynopsis = "usage: lockfile run [-w DURATION] [-t TEMPLATE] [-E CODE] PATH -- COMMAND [ARG...]\n"

const runHelp = runSynopsis + `
Take the lock on PATH, creating the file if it does not exist, and write
the expanded TEMPLATE into it. Then run COMMAND with lockfile's standard
input, output and error and its environment, and release the lock when
COMMAND exits. COMMAND may read PATH to see the content.

If the lock is held, lockfile names the holder on standard error and exits
with status CODE, without running COMMAND.

Options:
  -w DURATION  wait up to DURATION for a held lock, such as 500ms, 10s or
               1h30m; the default, 0, does not wait
  -t TEMPLATE  the content to write: {pid} is lockfile's own process id,
               {hostname} the host name, {{ and }} literal braces
               (default "{pid}")
  -E CODE      the exit status when the lock is held, 0 to 255 (default 1)
  -h           print this help

SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to lockfile are passed to COMMAND,
and lockfile keeps the lock until COMMAND has exited. A ^C at a terminal
reaches COMMAND directly too, so COMMAND sees SIGINT twice. While lockfile
waits for the lock, these signals end it as they end any program, and
COMMAND is not run.

Unlike with flock(1), COMMAND does not inherit the lock: processes that
COMMAND leaves running do not hold it after COMMAND exits, and if lockfile
is killed with SIGKILL, the lock is released while COMMAND runs on.

Exit status:
  CODE    the lock is held (with -w: still held after DURATION)
  2       usage error, COMMAND not run
  125     lockfile failed, e.g. it could not open or lock PATH
  126     COMMAND was found but cannot be executed
  127     COMMAND was not found
  128+N   COMMAND was killed by signal N
  other   COMMAND's exit status
`

const statusSynopsis = "usage: lockfile status PATH\n"

const statusHelp = statusSynopsis + `
Say whether the lock on PATH is held, without taking it. PATH is only read:
it is never created, truncated or written, and a missing file is a free
lock.

If the lock is held, print the content its holder wrote (such as 8244 or
8244;web-1) and exit with status 1. If the lock is free, print "free" and
exit with status 0.

A holder that writes nothing, such as flock(1), leaves the content of an
earlier holder in the file, which then names a process that may be gone;
if the file is empty, status prints an empty line and says on standard
error that the holder is not named.

To tell, status takes a shared lock on PATH for an instant and drops it:
a lock that someone tries to take at that very instant may be refused.

Exit status:
  0       the lock is free
  1       the lock is held
  2       usage error
  125     lockfile failed, e.g. PATH is not a regular file
`

func main() {
	os.Exit(lockfileMain(os.Args[1:]))
}

func lockfileMain(args []string) int {
	if len(args) == 0 {
		return usageError(synopsis, "", "no command given")
	}
	switch args[0] {
	case "run":
		return run(args[1:])
	case "status":
		return status(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Print(mainHelp)
		return 0
	}
	return usageError(synopsis, "", fmt.Sprintf("unknown command %q", args[0]))
}

// usageError prints what is wrong and the short usage, as a man page's
// synopsis, so the caller sees the right form next to the mistake.
func usageError(usage, sub, msg string) int {
	prefix := "lockfile"
	if sub != "" {
		prefix += " " + sub
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n%s", prefix, msg, usage)
	if sub != "" {
		fmt.Fprintf(os.Stderr, "Run 'lockfile %s -h' for help.\n", sub)
	} else {
		fmt.Fprintf(os.Stderr, "Run 'lockfile -h' for help.\n")
	}
	return exitUsage
}

// parseFlags parses a subcommand's flags. The flag package's own messages
// and usage are silenced so that -h prints the help on stdout and every
// usage error looks the same.
func parseFlags(fs *flag.FlagSet, args []string, usage, help string) (exit int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(help)
		return 0, false
	case err != nil:
		return usageError(usage, fs.Name(), err.Error()), false
	}
	return 0, true
}

func run(args []string) int {
	var (
		wait     time.Duration
		template = "{pid}"
		heldCode = 1
	)
	flags := flag.NewFlagSet("run", flag.ContinueOnError)
	flags.Func("w", "", func(s string) error {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil && isNumber(s):
			return fmt.Errorf("a duration needs a unit, such as %ss", s)
		case err != nil:
			return errors.New("not a duration; give one such as 500ms, 10s or 1h30m")
		case d < 0:
			return errors.New("a negative duration")
		}
		wait = d
		return nil
	})
	flags.Func("t", "", func(s string) error {
		if _, err := lockfile.ExpandTemplate(s); err != nil {
			var optErr *lockfile.OptionError
			if errors.As(err, &optErr) {
				return errors.New(optErr.Reason)
			}
			return err
		}
		template = s
		return nil
	})
	flags.Func("E", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return errors.New("not an exit status from 0 to 255")
		}
		heldCode = n
		return nil
	})
	if exit, ok := parseFlags(flags, args, runSynopsis, runHelp); !ok {
		return exit
	}
	args = flags.Args()
	switch {
	case len(args) == 0:
		return usageError(runSynopsis, "run", "no PATH given")
	case len(args) == 1:
		return usageError(runSynopsis, "run", "no COMMAND given")
	case args[1] != "--" && len(args[1]) > 1 && args[1][0] == '-':
		return usageError(runSynopsis, "run", fmt.Sprintf("%s after PATH: options go before PATH", args[1]))
	case args[1] != "--":
		return usageError(runSynopsis, "run", "no -- between PATH and COMMAND")
	case len(args) == 2:
		return usageError(runSynopsis, "run", "no COMMAND given")
	}
	path, argv := args[0], args[2:]

	// A COMMAND that is missing or not executable is reported before the
	// lock file is created or written. exec.Command looks up only names
	// without a slash, so the lookup is made here for all.
	if _, err := exec.LookPath(argv[0]); err != nil {
		return commandFailed(argv[0], err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr

	lock, err := takeLock(path, wait, lockfile.WithContentTemplate(template))
	var lockErr *lockfile.LockError
	switch {
	case errors.As(err, &lockErr):
		fmt.Fprintf(os.Stderr, "lockfile: %s is %s\n", path, heldBy(lockErr.Holder, wait))
		return heldCode
	case err != nil:
		fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
		return exitFailed
	}
	exit := runHolding(cmd)
	if err := lock.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
	}
	return exit
}

// takeLock takes the lock without waiting, or waits up to wait for it.
// Until the lock is held, a signal ends lockfile as it would any program:
// nothing is held, and nothing was started.
func takeLock(path string, wait time.Duration, opt lockfile.Option) (*lockfile.LockFile, error) {
	if wait == 0 {
		return lockfile.New(path, opt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return lockfile.Acquire(ctx, path, opt)
}

// isNumber tells a duration without a unit, as flock(1) takes them, from
// other mistakes.
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func heldBy(holder string, wait time.Duration) string {
	state := "held"
	if wait > 0 {
		state = "still held after " + wait.String()
	}
	if holder == "" {
		return state + "; the file does not name the holder"
	}
	return fmt.Sprintf("%s by %s", state, holder)
}

// runHolding runs cmd while the caller holds the lock and returns the exit
// status lockfile should exit with.
func runHolding(cmd *exec.Cmd) int {
	// Caught from before the start until lockfile exits, so that no signal
	// can end lockfile, and with it the lock, while COMMAND runs, nor turn
	// COMMAND's exit status into lockfile's death. One that comes before
	// the start is passed on right after it.
	sigs := make(chan os.Signal, len(forwarded))
	signal.Notify(sigs, forwarded...)
	if err := cmd.Start(); err != nil {
		return commandFailed(cmd.Args[0], err)
	}
	exited := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				// An error means COMMAND has exited, or cannot
				// take this signal (Windows, where a console's
				// ^C reaches it directly anyway).
				cmd.Process.Signal(sig)
			case <-exited:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
		return exitFailed
	}
	if sig, ok := killedBy(cmd.ProcessState); ok {
		return 128 + sig
	}
	return cmd.ProcessState.ExitCode()
}

// commandFailed reports a COMMAND that could not be started, with the
// shell's statuses: 127 when there is no such file, 126 when there is one
// that cannot be executed.
func commandFailed(name string, err error) int {
	// The name is said once, as a shell says it, not inside Go's wrapping.
	var execErr *exec.Error
	var pathErr *fs.PathError
	switch {
	case errors.As(err, &execErr):
		err = execErr.Err
	case errors.As(err, &pathErr):
		err = pathErr.Err
	}
	fmt.Fprintf(os.Stderr, "lockfile: %s: %v\n", name, err)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return exitNoExec
}

func status(args []string) int {
	flags := flag.NewFlagSet("status", flag.ContinueOnError)
	if exit, ok := parseFlags(flags, args, statusSynopsis, statusHelp); !ok {
		return exit
	}
	switch args = flags.Args(); len(args) {
	case 0:
		return usageError(statusSynopsis, "status", "no PATH given")
	case 1:
	default:
		return usageError(statusSynopsis, "status", fmt.Sprintf("unexpected %q after PATH", args[1]))
	}
	path := args[0]
	st, err := lockfile.Holder(path)
	holder, held := st.Holder, st.Held
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
		return exitFailed
	case !held:
		fmt.Println("free")
		return 0
	}
	// An empty line still tells a script that reads only stdout that the
	// lock is not free.
	fmt.Println(holder)
	if holder == "" {
		fmt.Fprintf(os.Stderr, "lockfile: %s is held; the file does not name the holder\n", path)
	}
	return 1
}
