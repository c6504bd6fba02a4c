//go:build aix || (solaris && !illumos) || (linux && lockfile_fcntl)

package main

// The library takes POSIX record locks here, which belong to a process:
// the command is built the same way, to exclude the tests' own locks, and
// the processes that COMMAND starts do not hold its lock.
func init() {
	buildFlags = append(buildFlags, "-tags", "lockfile_fcntl")
	recordLocks = true
}
