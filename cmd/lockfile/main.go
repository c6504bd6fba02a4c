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
//	lockfile run [-E CODE] [-s] [-t TEMPLATE] [-v] [-w DURATION] PATH [--] COMMAND [ARG...]
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
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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

const mainHelp = `
lockfile takes a lock on the file PATH: the lock that the Go package
github.com/golockfile/lockfile, Python's zc.lockfile and util-linux
flock(1) take, exclusive, or shared with run -s. It writes who holds the lock into the file, as the package
and zc.lockfile do, and reads it back for whoever is refused. PATH is a
regular file, or none yet: unlike flock(1), lockfile does not lock
directories, which have no content to name a holder.

A holder is printed with control characters and backslashes escaped as in
a Go string (\x1b, \n, \\), so that content cannot drive the terminal; the
file keeps the bytes as written.

Commands:
  run     run COMMAND while holding the lock
  status  say whether the lock is held, and by whom, without taking it

Run 'lockfile run -h' or 'lockfile status -h' for their options and exit
statuses. Usage errors exit with status 2.
`

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
a ^C included, reaches COMMAND alone, once. COMMAND inherits the open lock
file, and the lock is held until COMMAND and every process that inherited
the descriptor from it (a daemon it starts, say) have exited or closed it,
as with flock(1). On AIX and Solaris, whose locks belong to a process, it
is held until COMMAND itself exits or closes it.

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

const statusHelp = `
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

If shared holders (run -s, flock -s) hold it, print an empty line, say so
on standard error, and exit with status 1.

To tell, status takes a lock on PATH for an instant and drops it: a lock
that someone tries to take at that very instant may be refused.

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
	mainUsage := "usage: " + synopsis(runFlags(new(runConfig))) + "\n       " + synopsis(statusFlags()) + "\n"
	if len(args) == 0 {
		return usageError(mainUsage, "", "no command given")
	}
	if (args[0] == "run" || args[0] == "status") && wantsEtcd(args[1:]) {
		return runEtcd(args)
	}
	switch args[0] {
	case "run":
		return run(args[1:])
	case "status":
		return status(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Print(mainUsage + mainHelp)
		return 0
	}
	return usageError(mainUsage, "", fmt.Sprintf("unknown command %q", args[0]))
}

// synopsis is a command's usage line, built from its flags. The flags'
// usage strings name their values in back quotes, as flag.PrintDefaults
// reads them; the flag set's output holds the operands.
func synopsis(flags *flag.FlagSet) string {
	line := "lockfile " + flags.Name()
	flags.VisitAll(func(f *flag.Flag) {
		if value, _ := flag.UnquoteUsage(f); value != "" {
			line += fmt.Sprintf(" [-%s %s]", f.Name, value)
		} else {
			line += fmt.Sprintf(" [-%s]", f.Name)
		}
	})
	return line + " " + operands(flags.Name())
}

func operands(command string) string {
	if command == "run" {
		return "PATH [--] COMMAND [ARG...]"
	}
	return "PATH"
}

// help is a command's -h text: its synopsis, then text, in which the
// flags' descriptions replace "%s".
func help(flags *flag.FlagSet, text string) string {
	var defaults strings.Builder
	flags.SetOutput(&defaults)
	flags.PrintDefaults()
	flags.SetOutput(io.Discard)
	return "usage: " + synopsis(flags) + "\n" + strings.Replace(text, "%s", defaults.String(), 1)
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

// parseFlags parses a command's flags. The flag package's own messages
// and usage are silenced so that -h prints the help on stdout and every
// usage error looks the same.
func parseFlags(flags *flag.FlagSet, args []string, text string) (exit int, ok bool) {
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	err := flags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(help(flags, text))
		return 0, false
	case err != nil:
		return usageError("usage: "+synopsis(flags)+"\n", flags.Name(), err.Error()), false
	}
	return 0, true
}

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
	flags.Func("E", "exit with status `CODE`, 0 to 255, if the lock is held (default 1)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return errors.New("not an exit status from 0 to 255")
		}
		c.heldCode = n
		return nil
	})
	flags.Func("t", "write `TEMPLATE` into PATH: {pid} is the process id, {hostname}\n"+
		"the host name, {{ and }} are braces (default \"{pid}\")", func(s string) error {
		if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Errorf("a control character, %s: the holder is one line of text", strconv.QuoteRune(r))
		}
		if _, err := lockfile.ExpandTemplate(s); err != nil {
			var optErr *lockfile.OptionError
			if errors.As(err, &optErr) {
				return errors.New(optErr.Reason)
			}
			return err
		}
		c.template, c.tflag = s, true
		return nil
	})
	flags.BoolVar(&c.shared, "s", false, "take a shared lock, which others may share and an exclusive lock\n"+
		"excludes; it writes no content, so -t cannot go with it")
	flags.BoolVar(&c.verbose, "v", false, "say on standard error whom it waits for, and how long it waited")
	flags.Func("w", "wait up to `DURATION` for a held lock: seconds (10, .5), a Go\n"+
		"duration (1m30s), or inf for no limit (default 0: do not wait)", func(s string) (err error) {
		c.wait, c.forever, err = parseWait(s)
		return err
	})
	return flags
}

func statusFlags() *flag.FlagSet { return flag.NewFlagSet("status", flag.ContinueOnError) }

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
	usage := "usage: " + synopsis(flags) + "\n"
	args = flags.Args()
	if len(args) == 0 {
		return usageError(usage, "run", "no PATH given")
	}
	path, argv := args[0], args[1:]
	switch {
	case len(argv) > 0 && argv[0] == "--":
		argv = argv[1:]
	case len(argv) > 0 && len(argv[0]) > 1 && argv[0][0] == '-':
		return usageError(usage, "run", fmt.Sprintf(
			"%s after PATH: options go before PATH (and -- before a COMMAND that starts with -)", argv[0]))
	}
	if len(argv) == 0 {
		return usageError(usage, "run", "no COMMAND given")
	}
	if c.shared && c.tflag {
		return usageError(usage, "run", "-t with -s: a shared lock writes no content")
	}

	// A COMMAND that is missing or not executable is reported before the
	// lock file is created or written.
	command, err := exec.LookPath(argv[0])
	if err != nil {
		return commandFailed(argv[0], err)
	}
	// A shared lock opens the file for reading only, which a directory
	// allows; lockfile locks regular files either way.
	if info, err := os.Stat(path); err == nil && info.IsDir() {
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
		fmt.Fprintf(os.Stderr, "lockfile: %s is %s\n", path, heldBy(lockErr, c.wait))
		return c.heldCode
	case r.err != nil:
		return failed(path, r.err)
	}
	return runLocked(r.lock, command, argv)
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
			fmt.Fprintf(os.Stderr, "lockfile: %s is %s; waiting%s\n", path, heldBy(lockErr, 0), limit)
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
		fmt.Fprintf(os.Stderr, "lockfile: locked %s after %v\n", path, time.Since(began).Round(time.Millisecond))
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
	return fmt.Sprintf("%s by %s", state, escaped(holder))
}

// escaped writes backslashes and characters that are not printable as in
// a Go string literal (\\, \x1b, \n, \u2028, and \xff for a byte that is
// not UTF-8), so that a holder's content cannot drive the terminal.
func escaped(s string) string {
	clean := func(r rune) bool { return r != '\\' && r != utf8.RuneError && unicode.IsPrint(r) }
	if strings.IndexFunc(s, func(r rune) bool { return !clean(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case clean(r):
			b.WriteString(s[:size])
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		default:
			quoted := strconv.QuoteRune(r)
			b.WriteString(quoted[1 : len(quoted)-1])
		}
		s = s[size:]
	}
	return b.String()
}

// failed reports an error of lockfile's own.
func failed(path string, err error) int {
	fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
	if info, statErr := os.Stat(path); statErr == nil && info.IsDir() {
		fmt.Fprintf(os.Stderr, "lockfile: %s is a directory; lockfile locks a regular file, whose content names the holder\n", path)
	}
	return exitFailed
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
	flags := statusFlags()
	if exit, ok := parseFlags(flags, args, statusHelp); !ok {
		return exit
	}
	usage := "usage: " + synopsis(flags) + "\n"
	switch args = flags.Args(); len(args) {
	case 0:
		return usageError(usage, "status", "no PATH given")
	case 1:
	default:
		return usageError(usage, "status", fmt.Sprintf("unexpected %q after PATH", args[1]))
	}
	path := args[0]
	st, err := lockfile.Holder(path)
	holder, held := st.Holder, st.Held
	switch {
	case err != nil:
		return failed(path, err)
	case !held:
		fmt.Println("free")
		return 0
	case st.Shared:
		fmt.Println()
		fmt.Fprintf(os.Stderr, "lockfile: %s is held by shared holders, who write nothing\n", path)
		return 1
	}
	// An empty line still tells a script that reads only stdout that the
	// lock is not free.
	fmt.Println(escaped(holder))
	if holder == "" {
		fmt.Fprintf(os.Stderr, "lockfile: %s is held; the file does not name the holder\n", path)
	}
	return 1
}
