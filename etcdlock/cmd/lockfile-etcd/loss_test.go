//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// A proxy forwards TCP connections to etcd until the test cuts it: then
// it stops forwarding and leaves the client's connections open and silent,
// as a partition does.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) (*proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{l: l, target: target}
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p, nil
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // accepted, and never answered
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		go io.Copy(up, c)
		go io.Copy(c, up)
	}
}

// cutOff stops all forwarding: the connections to etcd are closed, those
// of the client stay open, and nothing more reaches it.
func (p *proxy) cutOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for i := 1; i < len(p.conns); i++ {
		if p.conns[i].RemoteAddr().String() == p.target {
			p.conns[i].Close()
		}
	}
}

// TestLossStopsCommandBeforeNextHolder cuts the holder off from etcd while
// its COMMAND runs, with a child of COMMAND's, and another contender waits
// for the lock on a direct connection. In every run, COMMAND's whole group
// must be dead before the other contender's COMMAND starts, and the holder
// must exit with the lost status within a second of its group's death.
//
// The group's death is the moment the test sees the end of a FIFO that
// every process of the group holds open, which is after it died; the
// other COMMAND's start is what it reads from the clock first, after it
// started; so the gap reported is at most the real one. The other COMMAND
// also checks that the holder's group is gone.
func TestLossStopsCommandBeforeNextHolder(t *testing.T) {
	needEtcd(t)
	// The runs wait on etcd's clock, not on the processors: they run a
	// few at a time, more than go test's -parallel would allow.
	const runs, atOnce = 20, 5
	type outcome struct {
		gap, exit time.Duration
		err       error
	}
	outcomes := make(chan outcome, runs)
	for wave := 0; wave < runs; wave += atOnce {
		var wg sync.WaitGroup
		for range min(atOnce, runs-wave) {
			wg.Go(func() {
				gap, exit, err := lossRun(t)
				outcomes <- outcome{gap, exit, err}
			})
		}
		wg.Wait()
	}
	close(outcomes)
	smallest, slowest, n := time.Duration(1<<62), time.Duration(0), 0
	for o := range outcomes {
		if o.err != nil {
			t.Error(o.err)
			continue
		}
		n, smallest, slowest = n+1, min(smallest, o.gap), max(slowest, o.exit)
	}
	t.Logf("%d of %d runs clean; smallest gap between the group's death and the next COMMAND: %v; "+
		"lockfile exited at most %v after the group's death", n, runs, smallest, slowest)
}

// lossRun returns the gap between the death of the holder's COMMAND and
// the start of the next, and how long after that death the holder exited,
// or what went wrong. It may be called from any goroutine.
func lossRun(t *testing.T) (gap, exit time.Duration, err error) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return 0, 0, err
	}
	died := make(chan time.Time, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_RDONLY, 0) // waits for the writer
		if err == nil {
			io.Copy(io.Discard, f)
			f.Close()
		}
		died <- time.Now()
	}()
	key := testKey(t)
	p, err := startProxy(t, server.addr)
	if err != nil {
		return 0, 0, err
	}
	holder, err := startProc(t, "run", "--etcd", p.addr(), "--ttl", "3", key, "sh", "-c",
		`echo $$ > "$1/pgid"; exec 3>"$1/fifo"; sleep 1000 & echo ready; wait`, "sh", dir)
	if err != nil {
		return 0, 0, err
	}
	if line, err := holder.nextLine(10 * time.Second); line != "ready" {
		return 0, 0, fmt.Errorf("holder said %q: %v", line, err)
	}
	check := `now=$(date +%s%N)
if kill -0 -"$(cat "$1/pgid")" 2>/dev/null; then echo overlap; else echo clean; fi
echo $now`
	waiter, err := startProc(t, "run", "--etcd", server.addr, "--ttl", "3", "-w", "30", "-v", key,
		"sh", "-c", check, "sh", dir)
	if err != nil {
		return 0, 0, err
	}
	for !strings.Contains(waiter.errors(), "waiting") {
		time.Sleep(10 * time.Millisecond)
	}
	p.cutOff()
	var dead time.Time
	select {
	case dead = <-died:
	case <-time.After(15 * time.Second):
		return 0, 0, fmt.Errorf("holder's COMMAND still runs 15 s after the cut; stderr: %s",
			holder.errors())
	}
	status, err := holder.waitExit(5 * time.Second)
	if err != nil {
		return 0, 0, err
	}
	exit = time.Since(dead)
	var errs []error
	if !status.Exited() || status.ExitStatus() != exitLost {
		errs = append(errs, fmt.Errorf("holder ended with %v, want exit status %d; stderr: %s",
			status, exitLost, holder.errors()))
	}
	if exit > time.Second {
		errs = append(errs, fmt.Errorf("holder exited %v after its group's death, want within a second",
			exit))
	}
	found, err := waiter.nextLine(30 * time.Second)
	if err != nil {
		return 0, 0, err
	}
	startText, err := waiter.nextLine(time.Second)
	if err != nil {
		return 0, 0, err
	}
	started, err := strconv.ParseInt(startText, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("waiter's COMMAND said %q", startText)
	}
	gap = time.Unix(0, started).Sub(dead)
	if found != "clean" || gap <= 0 {
		errs = append(errs, fmt.Errorf("overlap: the next COMMAND started %v after the holder's "+
			"group died, and found it %s", gap, found))
	}
	if _, err := waiter.waitExit(5 * time.Second); err != nil {
		errs = append(errs, err)
	}
	return gap, exit, errors.Join(errs...)
}

// TestKilledWrapperTakesCommandWithIt kills lockfile with SIGKILL while
// COMMAND and a child of COMMAND's run: both must be gone within a second,
// and the lock free once the TTL has passed.
func TestKilledWrapperTakesCommandWithIt(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	const ttl = 2 * time.Second
	holder := startLockfile(t, "run", "--etcd", server.addr, "--ttl", "2", key, "sh", "-c",
		`sleep 1000 & echo $$ $!; wait`)
	var pids [2]int
	if _, err := fmt.Sscan(holder.next(t, 10*time.Second), &pids[0], &pids[1]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pids[0], syscall.SIGKILL)
		syscall.Kill(pids[1], syscall.SIGKILL)
	})
	holder.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	for alive(pids[0]) || alive(pids[1]) {
		if time.Since(killed) > time.Second {
			t.Fatalf("COMMAND %d (alive: %v) or its child %d (alive: %v) still runs a second "+
				"after lockfile was killed", pids[0], alive(pids[0]), pids[1], alive(pids[1]))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("COMMAND and its child gone %v after lockfile was killed", time.Since(killed))
	for {
		r := runLockfile(t, "status", "--etcd", server.addr, key)
		if r.stdout == "free\n" {
			break
		}
		if time.Since(killed) > ttl+2*time.Second {
			t.Fatalf("lock still held %v after its holder was killed: %q %q",
				time.Since(killed), r.stdout, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeletedKeyStopsCommand deletes the holder's key behind its back, as
// an operator might: the lock is gone at once, so COMMAND's group must be
// killed at once, and lockfile exit with the lost status.
func TestDeletedKeyStopsCommand(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	holder := startLockfile(t, "run", "--etcd", server.addr, key, "sh", "-c",
		`trap '' TERM; sleep 1000 & echo $$ $!; wait`)
	var pids [2]int
	if _, err := fmt.Sscan(holder.next(t, 10*time.Second), &pids[0], &pids[1]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pids[0], syscall.SIGKILL)
		syscall.Kill(pids[1], syscall.SIGKILL)
	})
	c, err := newClient(server.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Delete(ctx, key+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	status := holder.wait(t, 5*time.Second)
	if !status.Exited() || status.ExitStatus() != exitLost {
		t.Errorf("holder ended with %v, want exit status %d; stderr: %s",
			status, exitLost, holder.errors())
	}
	if alive(pids[0]) || alive(pids[1]) {
		t.Errorf("COMMAND (alive: %v) or its child (alive: %v) outlived lockfile",
			alive(pids[0]), alive(pids[1]))
	}
	t.Logf("lockfile exited %v after the key was deleted", time.Since(deleted))
}
