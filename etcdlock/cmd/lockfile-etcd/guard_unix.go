//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// guardianName is the argv[0] with which lockfile-etcd runs as the guardian
// of a COMMAND's process group.
const guardianName = "lockfile-etcd guardian"

// A guardian is a process that kills COMMAND's process group with SIGKILL
// if lockfile dies before it says that all is well: it holds the read end
// of a pipe whose only write end is lockfile's, which the system closes
// however lockfile dies. It is in a process group of its own, so that
// neither the terminal's signals nor those sent to COMMAND's group or
// lockfile's reach it.
type guardian struct {
	w *os.File
}

func startGuardian() (*guardian, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil, err
	}
	defer null.Close()
	_, err = os.StartProcess(self, []string{guardianName}, &os.ProcAttr{
		Files: []*os.File{r, null, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	return &guardian{w: w}, nil
}

// arm tells the guardian COMMAND's process group.
func (g *guardian) arm(pgid int) error {
	_, err := fmt.Fprintf(g.w, "%d\n", pgid)
	return err
}

// disarm tells the guardian to exit without killing.
func (g *guardian) disarm() {
	g.w.WriteString("done\n")
	g.w.Close()
}

// guard is the guardian's main.
func guard() int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGPIPE,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1, syscall.SIGUSR2)
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadString('\n')
	if err != nil {
		return 0 // lockfile ended before COMMAND started
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pgid <= 1 {
		fmt.Fprintf(os.Stderr, "lockfile: guardian: bad process group %q\n", line)
		return 2
	}
	if line, err = in.ReadString('\n'); err == nil && line == "done\n" {
		return 0
	}
	// A process that forks while its group is killed may leave a child
	// behind: kill until the group is empty, for at most a second.
	for give := time.Now().Add(time.Second); time.Now().Before(give); {
		if errors.Is(unix.Kill(-pgid, unix.SIGKILL), unix.ESRCH) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0
}
