//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// terminal is lockfile's controlling terminal, when lockfile's process
// group is its foreground group.
type terminal struct {
	f     *os.File
	ours  int  // lockfile's process group
	given bool // COMMAND's group is the foreground group
}

// foregroundTerminal returns the controlling terminal if lockfile is in
// its foreground, and nil otherwise.
func foregroundTerminal() *terminal {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	t := &terminal{f: f, ours: unix.Getpgrp()}
	if !t.foreground() {
		f.Close()
		return nil
	}
	return t
}

// foreground reports whether lockfile's group is the terminal's foreground
// group.
func (t *terminal) foreground() bool {
	pg, err := unix.IoctlGetInt(int(t.f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == t.ours
}

// give makes pgid the foreground group, while lockfile's group is.
func (t *terminal) give(pgid int) {
	if unix.IoctlSetPointerInt(int(t.f.Fd()), unix.TIOCSPGRP, pgid) == nil {
		t.given = true
	}
}

// reclaim makes lockfile's group the foreground group again if COMMAND's
// was. From a background group that takes SIGTTOU ignored for an instant;
// no child is started meanwhile, so none inherits that.
func (t *terminal) reclaim() {
	if t == nil || !t.given {
		return
	}
	ignored := signal.Ignored(syscall.SIGTTOU)
	if !ignored {
		signal.Ignore(syscall.SIGTTOU)
	}
	unix.IoctlSetPointerInt(int(t.f.Fd()), unix.TIOCSPGRP, t.ours)
	if !ignored {
		signal.Reset(syscall.SIGTTOU)
	}
	t.given = false
}

func (t *terminal) close() {
	if t != nil {
		t.f.Close()
	}
}

// ctty is the descriptor of the terminal for SysProcAttr.Ctty.
func (t *terminal) ctty() (fd int, ok bool) {
	if t == nil {
		return 0, false
	}
	t.given = true
	return int(t.f.Fd()), true
}
