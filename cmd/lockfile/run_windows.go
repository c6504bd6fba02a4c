package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"unsafe"

	"github.com/golockfile/lockfile"
	"golang.org/x/sys/windows"
)

// runLocked runs COMMAND as lockfile's child, Windows having no exec, and
// returns its exit status. lockfile holds the lock until COMMAND exits.
// COMMAND and its descendants run in a job that ends with lockfile, so
// that none of them runs on without the lock if lockfile is killed.
func runLocked(lock *lockfile.SimpleLockFile, command string, argv []string) int {
	defer lock.Close()
	if err := joinKillOnCloseJob(); err != nil {
		fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
		return exitFailed
	}
	// A console's ^C and close events reach COMMAND directly; lockfile
	// outlives them to pass on COMMAND's status.
	signal.Notify(make(chan os.Signal, 1), os.Interrupt, syscall.SIGTERM)
	cmd := &exec.Cmd{Path: command, Args: argv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
	case err != nil:
		return commandFailed(argv[0], err)
	}
	return cmd.ProcessState.ExitCode()
}

// joinKillOnCloseJob puts lockfile in a new job that the system ends, with
// every process in it, when the job's last handle is closed. That handle
// is lockfile's own, not inherited, and is closed only when lockfile exits,
// however it exits. The children that lockfile starts afterwards are born
// in the job.
func joinKillOnCloseJob() error {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return fmt.Errorf("CreateJobObject: %w", err)
	}
	var limits windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
	limits.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	_, err = windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&limits)), uint32(unsafe.Sizeof(limits)))
	if err == nil {
		err = windows.AssignProcessToJobObject(job, windows.CurrentProcess())
	}
	if err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("putting COMMAND in a job that ends with lockfile: %w", err)
	}
	return nil
}

// Windows delivers no signal that lockfile catches while it waits; a
// console's ^C ends it as it ends any program.
func catchSignals() <-chan os.Signal { return nil }

func dieOf(os.Signal) int { return exitFailed }
