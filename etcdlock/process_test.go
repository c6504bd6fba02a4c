//go:build unix

package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
)

func TestExclusionAcrossProcesses(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	holder := startHelper(t, "hold", shared.clientURL, key, "{pid};{hostname}", "2s")
	rest := holder.expect(t, "locked")
	_, content, _ := strings.Cut(rest, " ")
	host, _ := os.Hostname()
	if want := fmt.Sprintf("%d;%s", holder.cmd.Process.Pid, host); content != want {
		t.Fatalf("holder's content %q, want %q", content, want)
	}

	// This process is refused, and told who holds the lock.
	_, err := New(ctx, c, key)
	var lockErr *lockfile.LockError
	if !errors.As(err, &lockErr) || !errors.Is(err, lockfile.ErrLocked) || lockErr.Holder != content {
		t.Fatalf("New while another process holds the lock: %v, want a LockError naming %q", err, content)
	}
	// So is a third process.
	if got := startHelper(t, "try", shared.clientURL, key).expect(t, "locked"); got != content {
		t.Fatalf("third process told the holder is %q, want %q", got, content)
	}

	holder.finish(t)
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatalf("New after the holder released: %v", err)
	}
	l.Close()
}

// TestHandoffAcrossProcesses has two processes take the lock in turns, each
// holding it while the other waits, and checks the resource's fencing. A
// waiter queues when the other process takes the lock, so it waits about
// as long as the hold: holds of 5 to 40 ms show the handoff to a waiter
// that queued shortly before the release, the case that a watch from a
// past revision would delay until etcd catches it up, every 100 ms. go test
// -v logs the handoff times, from a holder's Close to the waiter's Acquire
// returning.
func TestHandoffAcrossProcesses(t *testing.T) {
	needEtcd(t)
	for _, tc := range []struct {
		minHold, maxHold time.Duration
		rounds           int
	}{{5 * time.Millisecond, 40 * time.Millisecond, 40}, {150 * time.Millisecond, 150 * time.Millisecond, 10}} {
		t.Run(fmt.Sprintf("hold=%v-%v", tc.minHold, tc.maxHold), func(t *testing.T) {
			key := testKey(t)
			res := filepath.Join(t.TempDir(), "resource")
			args := []string{shared.clientURL, key, "2s", tc.minHold.String(), tc.maxHold.String(), res}
			helpers := []*helper{startHelper(t, "cycle", args...), startHelper(t, "cycle", args...)}
			holds := collectHolds(t, helpers, tc.rounds, nil)
			checkHolds(t, holds, true)
			var handoffs []time.Duration
			for i := 1; i < len(holds); i++ {
				handoffs = append(handoffs, time.Duration(holds[i].acquiredAt-holds[i-1].releasedAt))
			}
			slices.Sort(handoffs)
			t.Logf("%d holds, %d fencing tokens checked; %d handoffs between processes through etcd: p50 %v, max %v",
				len(holds), len(holds), len(handoffs), percentile(handoffs, 50), handoffs[len(handoffs)-1])
		})
	}
}

func TestKilledHolderReleasedAfterTTL(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	const ttl = 2 * time.Second
	holder := startHelper(t, "hold", shared.clientURL, key, "doomed", ttl.String())
	holder.expect(t, "locked")
	if err := holder.cmd.Process.Kill(); err != nil { // SIGKILL: no Close, no revoke
		t.Fatal(err)
	}
	holder.cmd.Wait()
	killed := time.Now()

	// The dead holder's lease still stands, and still names it.
	_, err := New(ctx, c, key)
	var lockErr *lockfile.LockError
	if !errors.As(err, &lockErr) || lockErr.Holder != "doomed" {
		t.Fatalf("New right after the kill: %v, want a LockError naming %q", err, "doomed")
	}

	waitCtx, cancel := context.WithTimeout(ctx, ttl+5*time.Second)
	defer cancel()
	l, err := Acquire(waitCtx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	free := time.Since(killed)
	t.Logf("lock free %v after SIGKILL of its holder (TTL %v)", free, ttl)
	// The lease was renewed at most a third of the TTL before the kill, and
	// etcd checks for expired leases every half second.
	if low, high := ttl*2/3-100*time.Millisecond, ttl+time.Second; free < low || free > high {
		t.Errorf("lock free %v after the kill, want between %v and %v", free, low, high)
	}
}

// TestLostWhenEtcdStops stops the only etcd member (SIGSTOP) right after
// the lock is taken, so that the holder cannot renew its lease: Lost must
// close by the holder's own clock no later than the TTL after New was
// called, when etcd may let the lease expire, although etcd never answers,
// and Close must not hang.
func TestLostWhenEtcdStops(t *testing.T) {
	s := startStoppable(t)
	c, err := newClient(s.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const ttl = 2 * time.Second
	key := testKey(t)
	warmUp(t, c, key)
	begun := time.Now()
	l, err := New(context.Background(), c, key, WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer s.cmd.Process.Signal(syscall.SIGCONT)
	stopped := time.Now()
	select {
	case <-l.Lost():
		t.Logf("Lost closed %v after etcd stopped, %v after New was called (TTL %v)", time.Since(stopped), time.Since(begun), ttl)
		// The timer that closes Lost may run a little late on a busy
		// machine; seconds late is the client's deadline instead.
		if late := time.Since(begun) - ttl; late > 300*time.Millisecond {
			t.Errorf("Lost closed %v after the lease could have expired", late)
		}
	case <-time.After(ttl + 2*time.Second):
		t.Fatalf("Lost not closed %v after etcd stopped", ttl+2*time.Second)
	}
	// Close tries to revoke the lease until it has expired by itself.
	start := time.Now()
	if err := l.Close(); !errors.Is(err, ErrLost) {
		t.Errorf("Close: %v, want ErrLost", err)
	}
	if d := time.Since(start); d > ttl+time.Second {
		t.Errorf("Close after the lease ended took %v", d)
	}
}

// TestSlowRenewalKeepsLock stops etcd right after the lock is taken for
// longer than a renewal try, a third of the TTL, but shorter than the TTL:
// etcd keeps the lease, so the holder must keep the lock, and Close must
// release it at once.
func TestSlowRenewalKeepsLock(t *testing.T) {
	s := startStoppable(t)
	c, err := newClient(s.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const ttl = 4 * time.Second
	key := testKey(t)
	warmUp(t, c, key)
	l, err := New(context.Background(), c, key, WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
		t.Fatal("Lost closed while etcd kept the lease")
	case <-time.After(time.Second):
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	other, err := newClient(s.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	next, err := New(context.Background(), other, key)
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	next.Close()
}

// startStoppable starts an etcd member of the test's own, which it may
// stop and resume.
func startStoppable(t *testing.T) *etcdServer {
	t.Helper()
	needEtcd(t)
	servers, err := startCluster(t.TempDir(), "stopped", 1)
	if err != nil {
		t.Fatal(err)
	}
	s := servers[0]
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.stop()
	})
	return s
}

// TestClusterLosesLeader runs three processes taking the lock in turns
// through a three-member cluster, kills the leader while they do, and
// checks that the lock kept excluding: no holder entered the fenced
// resource while another was inside, and every token was greater than
// all before it.
func TestClusterLosesLeader(t *testing.T) {
	needEtcd(t)
	servers, err := startCluster(t.TempDir(), "cluster", 3)
	if err != nil {
		t.Fatal(err)
	}
	var endpoints []string
	for _, s := range servers {
		defer s.stop()
		endpoints = append(endpoints, s.clientURL)
	}
	key := testKey(t)
	res := filepath.Join(t.TempDir(), "resource")
	var helpers []*helper
	for range 3 {
		helpers = append(helpers, startHelper(t, "cycle", strings.Join(endpoints, ","), key, "2s", "20ms", "20ms", res))
	}
	var killedAt int64
	holds := collectHolds(t, helpers, 120, func(n int) {
		if n != 40 {
			return
		}
		leader := findLeader(t, servers)
		killedAt = time.Now().UnixNano()
		leader.stop()
		t.Logf("killed the leader, %s, after %d holds", leader.name, n)
	})
	checkHolds(t, holds, false)
	after, lost := 0, 0
	var gap time.Duration // the longest time the lock was free around the kill
	for i, h := range holds {
		if h.acquiredAt > killedAt {
			after++
			if d := time.Duration(h.acquiredAt - holds[i-1].releasedAt); d > gap {
				gap = d
			}
		}
		lost += h.lost
	}
	if after == 0 {
		t.Fatal("no holds after the leader was killed")
	}
	t.Logf("%d holds by 3 processes, %d after the leader was killed; %d fencing tokens checked, 0 overlaps, 0 stale tokens; %d locks lost; longest handoff after the kill %v",
		len(holds), after, len(holds), lost, gap)
}

// findLeader returns the member that is the cluster's leader now.
func findLeader(t *testing.T, servers []*etcdServer) *etcdServer {
	t.Helper()
	for _, s := range servers {
		c, err := newClient(s.clientURL)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Status(ctx, s.clientURL)
		cancel()
		c.Close()
		if err == nil && st.Leader == st.Header.MemberId {
			return s
		}
	}
	t.Fatal("no leader")
	return nil
}

// hold is one round reported by a cycle helper.
type hold struct {
	token                  int64
	acquiredAt, releasedAt int64
	lost, overlaps, stale  int
}

// collectHolds reads the helpers' reports until n holds are in, calling
// each(count) after each, then stops the helpers and returns the holds in
// the order they were acquired.
func collectHolds(t *testing.T, helpers []*helper, n int, each func(int)) []hold {
	t.Helper()
	lines := make(chan string)
	for _, h := range helpers {
		go func() {
			for h.lines.Scan() {
				lines <- h.lines.Text()
			}
		}()
	}
	var holds []hold
	errs := 0
	timeout := time.After(60 * time.Second)
	for len(holds) < n {
		select {
		case line := <-lines:
			verb, rest, _ := strings.Cut(line, " ")
			if verb != "held" {
				t.Logf("helper: %s", line)
				if errs++; errs > 20 {
					t.Fatal("too many errors")
				}
				continue
			}
			var h hold
			if _, err := fmt.Sscan(rest, &h.token, &h.acquiredAt, &h.releasedAt, &h.lost, &h.overlaps, &h.stale); err != nil {
				t.Fatalf("report %q: %v", line, err)
			}
			holds = append(holds, h)
			if each != nil {
				each(len(holds))
			}
		case <-timeout:
			t.Fatalf("only %d holds after 60s", len(holds))
		}
	}
	for _, h := range helpers {
		h.stdin.Close()
	}
	go func() { // let the helpers finish their last round
		for range lines {
		}
	}()
	for _, h := range helpers {
		if err := h.cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	slices.SortFunc(holds, func(a, b hold) int { return int(a.acquiredAt - b.acquiredAt) })
	return holds
}

// checkHolds fails on any overlap or stale token the resource saw, on
// tokens that do not grow in the order the lock was taken, on holds whose
// times overlap, and, if lossForbidden, on a lost lock.
func checkHolds(t *testing.T, holds []hold, lossForbidden bool) {
	t.Helper()
	for i, h := range holds {
		if h.overlaps != 0 || h.stale != 0 {
			t.Errorf("hold %d (token %d): %d overlaps, %d stale tokens seen by the resource", i, h.token, h.overlaps, h.stale)
		}
		if lossForbidden && h.lost != 0 {
			t.Errorf("hold %d (token %d) lost its lock", i, h.token)
		}
		if i > 0 && h.token <= holds[i-1].token {
			t.Errorf("hold %d has token %d after %d", i, h.token, holds[i-1].token)
		}
		if i > 0 && h.acquiredAt < holds[i-1].releasedAt {
			t.Errorf("hold %d acquired %v before hold %d released", i, time.Duration(holds[i-1].releasedAt-h.acquiredAt), i-1)
		}
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100]
}

// TestAbandonedAcquireLeavesNoGoroutine stops etcd while Acquire waits
// and ends Acquire's context: Acquire returns, and no goroutine of its
// attempt is left, even while etcd does not answer.
func TestAbandonedAcquireLeavesNoGoroutine(t *testing.T) {
	s := startStoppable(t)
	c, err := newClient(s.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := testKey(t)
	warmUp(t, c, key)
	holder := startHelper(t, "hold", s.clientURL, key, "holder", "10s")
	holder.expect(t, "locked")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error)
	go func() {
		_, err := Acquire(ctx, c, key)
		result <- err
	}()
	waitFor(t, "the waiter to queue", func() bool { return keyCount(t, c, key) == 2 })
	time.Sleep(50 * time.Millisecond) // into the watch
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer s.cmd.Process.Signal(syscall.SIGCONT)
	cancel()
	select {
	case err := <-result:
		var lockErr *lockfile.LockError
		if !errors.As(err, &lockErr) || !errors.Is(err, context.Canceled) || lockErr.Holder != "holder" {
			t.Errorf("Acquire: %v, want a LockError naming %q and wrapping context.Canceled", err, "holder")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Acquire did not return 3s after its context ended")
	}
	// The background revocation of the attempt's lease lasts at most a
	// second.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := ownGoroutines()
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after Acquire returned, with etcd stopped, goroutines left:\n\n%s", strings.Join(left, "\n\n"))
		}
	}
}

// ownGoroutines returns the stacks of the goroutines that run the
// package's code, its tests' aside, or that of etcd's concurrency package.
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var own []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if ownFrame.MatchString(g) {
			own = append(own, g)
		}
	}
	return own
}

var ownFrame = regexp.MustCompile(`/etcdlock/[a-z]+\.go:\d+|/client/v3/concurrency/`)
