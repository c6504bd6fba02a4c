package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/internal/printable"
)

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

func statusFlags() *flag.FlagSet { return flag.NewFlagSet("status", flag.ContinueOnError) }

func status(args []string) int {
	flags := statusFlags()
	if exit, ok := parseFlags(flags, args, statusHelp); !ok {
		return exit
	}
	switch args = flags.Args(); len(args) {
	case 0:
		return usageError(flags, "no PATH given")
	case 1:
	default:
		return usageError(flags, fmt.Sprintf("unexpected %q after PATH", args[1]))
	}
	path := args[0]
	st, err := lockfile.Inspect(path)
	holder, held := st.Holder, st.Held
	switch {
	case err != nil:
		return failed(path, err)
	case !held:
		fmt.Println("free")
		return 0
	case st.Shared:
		fmt.Println()
		fmt.Fprintf(os.Stderr, "lockfile: %s is held by shared holders, who write nothing\n",
			printable.Quote(path))
		return 1
	}
	// An empty line still tells a script that reads only stdout that the
	// lock is not free.
	fmt.Println(printable.Escape(holder))
	if holder == "" {
		fmt.Fprintf(os.Stderr, "lockfile: %s is held; the file does not name the holder\n", printable.Quote(path))
	}
	return 1
}
