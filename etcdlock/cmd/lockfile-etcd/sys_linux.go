package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// osSignals are Linux's own signals that end a program by default: SIGIO,
// SIGPWR, and the real-time signals that the C library leaves to programs.
func osSignals() []syscall.Signal {
	sigs := []syscall.Signal{syscall.SIGIO, syscall.SIGPWR}
	for sig := syscall.Signal(35); sig <= 64; sig++ {
		sigs = append(sigs, sig)
	}
	return sigs
}

// commandAttr puts COMMAND in a process group of its own, the terminal's
// foreground group if tty is not nil. COMMAND is killed if the thread that
// started it ends, which covers the instant before the guardian knows its
// group; the runtime ends no thread that this program leaves unlocked.
func commandAttr(tty *terminal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if fd, ok := tty.ctty(); ok {
		attr.Foreground, attr.Ctty = true, fd
	}
	return attr
}

// adoptOrphans makes lockfile the reaper of the processes that COMMAND's
// descendants leave behind, so that their deaths are seen at once even
// where init is slow to reap.
func adoptOrphans() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }

// zombiesOnly reports whether every process of group pgid is a zombie.
func zombiesOnly(pgid int) bool {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return false
	}
	want := []byte(" " + strconv.Itoa(pgid) + " ")
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold anything but ")".
		i := bytes.LastIndexByte(data, ')')
		if i < 0 || len(data) < i+4 {
			continue
		}
		fields := bytes.Fields(data[i+2:])
		if len(fields) >= 3 && bytes.Equal(fields[2], want[1:len(want)-1]) && fields[0][0] != 'Z' {
			return false
		}
	}
	return true
}
