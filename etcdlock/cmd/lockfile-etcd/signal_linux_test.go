package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIgnoredSignalsStayIgnored starts lockfile with SIGINT ignored, as a
// shell starts a background job, and SIGHUP, as nohup does: COMMAND must
// find SIGINT, SIGQUIT and SIGHUP ignored, and SIGTERM not.
func TestIgnoredSignalsStayIgnored(t *testing.T) {
	needEtcd(t)
	cmd := lockfileCmd()
	cmd.Path = "/bin/sh"
	cmd.Args = []string{"sh", "-c", `trap '' INT HUP; exec "$@"`, "sh",
		lockfileBin, "run", "--etcd", server.addr,
		testKey(t), "sh", "-c", "grep SigIgn /proc/$$/status"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	maskText := strings.TrimSpace(strings.TrimPrefix(string(out), "SigIgn:"))
	mask, err := strconv.ParseUint(maskText, 16, 64)
	if err != nil {
		t.Fatalf("COMMAND said %q", out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP} {
		if mask&(1<<(sig-1)) == 0 {
			t.Errorf("%v is not ignored in COMMAND (SigIgn %x)", sig, mask)
		}
	}
	if mask&(1<<(syscall.SIGTERM-1)) != 0 {
		t.Errorf("SIGTERM is ignored in COMMAND (SigIgn %x)", mask)
	}
}

// TestCommandReadsTheTerminal runs lockfile as the foreground job of a
// pseudo-terminal: COMMAND, in a process group of its own, must be able
// to read the terminal, as it could without lockfile.
func TestCommandReadsTheTerminal(t *testing.T) {
	needEtcd(t)
	term, cmd := startOnTerminal(t, `read line; echo "got:$line"`)
	term.waitLocked(t)
	fmt.Fprint(term.master, "hello\n")
	term.waitFor(t, "got:hello")
	waitExit(t, cmd)
}

// TestStopAndContinueOnTerminal stops COMMAND with ^Z: lockfile must stop
// too, so that a shell sees its job stopped, and when continued give
// COMMAND the terminal again.
func TestStopAndContinueOnTerminal(t *testing.T) {
	needEtcd(t)
	term, cmd := startOnTerminal(t, `read a; echo "a:$a"; read b; echo "b:$b"`)
	term.waitLocked(t)
	fmt.Fprint(term.master, "one\n")
	term.waitFor(t, "a:one")
	fmt.Fprint(term.master, "\x1a") // ^Z
	for began := time.Now(); processState(cmd.Process.Pid) != 'T'; time.Sleep(10 * time.Millisecond) {
		if time.Since(began) > 5*time.Second {
			t.Fatalf("lockfile is in state %c 5 s after ^Z, want stopped (T)", processState(cmd.Process.Pid))
		}
	}
	cmd.Process.Signal(syscall.SIGCONT) // as a shell's fg does
	fmt.Fprint(term.master, "two\n")
	term.waitFor(t, "b:two")
	waitExit(t, cmd)
}

// processState returns the state letter of process pid, as ps shows it.
func processState(pid int) byte {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(string(data), ')')
	if err != nil || i < 0 || len(data) < i+3 {
		return '?'
	}
	return data[i+2]
}

// A ptyTerm is the master side of a pseudo-terminal, whose output the test
// collects.
type ptyTerm struct {
	master *os.File
	mu     sync.Mutex
	out    []byte
}

// startOnTerminal runs lockfile run --etcd ... sh -c script as the
// foreground job of a new pseudo-terminal, with -v so that it says when it
// holds the lock.
func startOnTerminal(t *testing.T, script string) (*ptyTerm, *exec.Cmd) {
	t.Helper()
	master, slave := openPty(t)
	cmd := lockfileCmd("run", "--etcd", server.addr, "-v", testKey(t), "sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	slave.Close()
	term := &ptyTerm{master: master}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out = append(term.out, buf[:n]...)
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return term, cmd
}

// waitLocked waits until lockfile says it holds the lock; COMMAND starts
// right after.
func (term *ptyTerm) waitLocked(t *testing.T) {
	t.Helper()
	term.waitFor(t, "lockfile: locked")
	time.Sleep(200 * time.Millisecond)
}

func (term *ptyTerm) waitFor(t *testing.T, want string) {
	t.Helper()
	for began := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		term.mu.Lock()
		out := string(term.out)
		term.mu.Unlock()
		if strings.Contains(out, want) {
			return
		}
		if time.Since(began) > 10*time.Second {
			t.Fatalf("terminal shows %q, not %q, after 10 s", out, want)
		}
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lockfile: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lockfile still runs 10 s after COMMAND's last line")
	}
}

// openPty opens a pseudo-terminal's master and slave.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}
