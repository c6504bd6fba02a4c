package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIgnoredSignalsStayIgnored starts lockfile with SIGINT ignored, as a
// shell starts a background job: COMMAND must find SIGINT and SIGQUIT
// ignored.
func TestIgnoredSignalsStayIgnored(t *testing.T) {
	needEtcd(t)
	cmd := lockfileCmd()
	cmd.Path = "/bin/sh"
	cmd.Args = []string{"sh", "-c", `trap '' INT; exec "$@"`, "sh", lockfileBin, "run", "--etcd", server.addr,
		testKey(t), "sh", "-c", "grep SigIgn /proc/$$/status"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(out), "SigIgn:")), 16, 64)
	if err != nil {
		t.Fatalf("COMMAND said %q", out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT} {
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
	master, slave := openPty(t)
	cmd := lockfileCmd("run", "--etcd", server.addr, testKey(t), "sh", "-c", `read line; echo "got:$line"`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	slave.Close()
	output := make(chan string)
	go func() {
		var all []byte
		buf := make([]byte, 256)
		for {
			n, err := master.Read(buf)
			all = append(all, buf[:n]...)
			if strings.Contains(string(all), "got:hello") || err != nil {
				output <- string(all)
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // COMMAND reads after the lock is taken
	fmt.Fprint(master, "hello\n")
	select {
	case out := <-output:
		if !strings.Contains(out, "got:hello") {
			t.Fatalf("terminal shows %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("COMMAND did not read the terminal within 10 s")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lockfile: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lockfile still runs 10 s after COMMAND read its line")
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
