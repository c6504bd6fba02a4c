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
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/golockfile/lockfile/internal/printable"
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
flock(1) take, exclusive, or shared with run -s. It writes who holds the
lock into the file, as the package and zc.lockfile do, and reads it back
for whoever is refused. PATH is a regular file, or none yet: unlike
flock(1), lockfile does not lock directories, named pipes or devices,
which have no content to name a holder.

A holder is printed with control characters and backslashes escaped as in
a Go string (\x1b, \n, \\), so that content cannot drive the terminal; the
file keeps the bytes as written. A path with such characters is printed as
a quoted Go string.

Commands:
  run     run COMMAND while holding the lock
  status  say whether the lock is held, and by whom, without taking it

Run 'lockfile run -h' or 'lockfile status -h' for their options and exit
statuses. Usage errors exit with status 2.

With --etcd ENDPOINTS before KEY, run and status take an etcd lock
instead, through the program lockfile-etcd, which must be installed
beside lockfile or on PATH: see 'lockfile run --etcd x -h'.
`

func main() {
	os.Exit(lockfileMain(os.Args[1:]))
}

func lockfileMain(args []string) int {
	if len(args) == 0 {
		return usageError(nil, "no command given")
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
		fmt.Print(mainUsage() + mainHelp)
		return 0
	}
	return usageError(nil, fmt.Sprintf("unknown command %q", args[0]))
}

// mainUsage is the usage of lockfile: the synopses of its commands.
func mainUsage() string {
	run, status := synopsis(runFlags(new(runConfig))), synopsis(statusFlags())
	return "usage: " + run + "\n       " + status + "\n"
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
// synopsis, so the caller sees the right form next to the mistake. flags
// are the command's, nil for lockfile's own.
func usageError(flags *flag.FlagSet, msg string) int {
	name, usage := "lockfile", mainUsage()
	if flags != nil {
		name, usage = "lockfile "+flags.Name(), "usage: "+synopsis(flags)+"\n"
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n%sRun '%s -h' for help.\n", name, msg, usage, name)
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
		return usageError(flags, err.Error()), false
	}
	return 0, true
}

// failed reports an error of lockfile's own, naming the file as quoted
// does.
func failed(path string, err error) int {
	msg := err.Error()
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		safe := *pathErr
		safe.Path = printable.Quote(safe.Path)
		msg = strings.Replace(msg, pathErr.Error(), safe.Error(), 1)
	}
	fmt.Fprintf(os.Stderr, "lockfile: %s\n", msg)
	if info, statErr := os.Stat(path); statErr == nil && info.IsDir() {
		fmt.Fprintf(os.Stderr, "lockfile: %s is a directory; lockfile locks a regular file, "+
			"whose content names the holder\n", printable.Quote(path))
	}
	return exitFailed
}
