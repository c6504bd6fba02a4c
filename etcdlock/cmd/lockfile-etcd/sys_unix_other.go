//go:build unix && !linux

package main

import "syscall"

func osSignals() []syscall.Signal { return nil }

// commandAttr puts COMMAND in a process group of its own, the terminal's
// foreground group if tty is not nil.
func commandAttr(tty *terminal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if fd, ok := tty.ctty(); ok {
		attr.Foreground, attr.Ctty = true, fd
	}
	return attr
}

// adoptOrphans does nothing here: init reaps the orphans.
func adoptOrphans() {}

// zombiesOnly cannot tell here: a group is gone when kill finds none.
func zombiesOnly(int) bool { return false }
