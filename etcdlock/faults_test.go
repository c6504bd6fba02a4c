//go:build unix

package etcdlock

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// proxiedClient returns a client that reaches the shared server through a
// proxy the test controls, closed after the test.
func proxiedClient(t *testing.T) (*proxy, *clientv3.Client) {
	t.Helper()
	needEtcd(t)
	p := startProxy(t, shared.clientURL)
	c, err := newClient(p.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

// TestCloseAfterLossFreesLock cuts a holder off from etcd, both ways, so
// that Lost closes by the holder's clock while etcd may still keep the
// lease. The cut heals 300 ms later, while the holder closes the lock and
// then its client, as a program that returns on Lost does. The lock must
// be free when Close returns.
func TestCloseAfterLossFreesLock(t *testing.T) {
	p, c := proxiedClient(t)
	ctx := context.Background()
	const ttl = 2 * time.Second
	key := testKey(t)
	l, err := New(ctx, c, key, WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	p.hold(true, true)
	select {
	case <-l.Lost():
	case <-time.After(ttl + 2*time.Second):
		t.Fatal("Lost not closed with etcd cut off")
	}
	heal := time.AfterFunc(300*time.Millisecond, func() { p.hold(false, false) })
	defer heal.Stop()
	start := time.Now()
	err = l.Close()
	closed := time.Now()
	c.Close()
	if !errors.Is(err, ErrLost) {
		t.Errorf("Close: %v, want ErrLost", err)
	}
	other := testClient(t)
	for try := 1; ; try++ {
		next, err := New(ctx, other, key)
		if err == nil {
			next.Close()
			t.Logf("Close took %v; the lock was free %v after it returned (try %d, TTL %v)",
				closed.Sub(start), time.Since(closed), try, ttl)
			if try > 1 {
				t.Errorf("the lock was still held when Close returned")
			}
			return
		}
		if !errors.Is(err, lockfile.ErrLocked) {
			t.Fatal(err)
		}
		if time.Since(closed) > ttl+2*time.Second {
			t.Fatalf("the lock still held %v after Close", time.Since(closed))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCancelledAttemptsRevokeTheirLeases ends 40 New and Acquire calls on
// a held lock while their requests cross a slow link, 20 ms each way,
// many while the grant of their lease is in flight: etcd grants the lease
// after the caller gave up, and it must be revoked all the same. A lease
// the client keeps for its next lock is not left behind; any other is.
func TestCancelledAttemptsRevokeTheirLeases(t *testing.T) {
	p, c := proxiedClient(t)
	direct := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	holder, err := New(ctx, direct, key)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	before := leaseIDs(t, direct)
	p.setDelay(20 * time.Millisecond)
	for i := range 40 {
		take, timeout := New, time.Duration(5+5*(i/2%8))*time.Millisecond
		if i%2 == 1 {
			take = Acquire
		}
		attempt, cancel := context.WithTimeout(ctx, timeout)
		_, err := take(attempt, c, key)
		cancel()
		if err == nil {
			t.Fatal("the lock was taken while held")
		}
	}
	var left []clientv3.LeaseID
	start := time.Now()
	for {
		left = left[:0]
		kept := keptLeases(c)
		for _, id := range newLeases(t, direct, before) {
			if !kept[id] {
				left = append(left, id)
			}
		}
		// Revocations in the background take a round trip or two.
		if len(left) == 0 || time.Since(start) > 3*time.Second {
			t.Logf("%d leases left %v after 40 cancelled attempts (%d kept by the client)",
				len(left), time.Since(start).Round(time.Millisecond), len(kept))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) != 0 {
		t.Errorf("cancelled attempts left %d leases", len(left))
	}
	waitFor(t, "the attempts' keys to go", func() bool { return keyCount(t, direct, key) == 1 })
}

// TestAcquireEndedBeforeQueuedNamesHolder ends Acquire's context before
// its key is queued: done at the call, or while its requests cross a slow
// link. The lock is held at the deadline, so the error is the LockError
// that names the holder, as when the context ends while Acquire waits.
func TestAcquireEndedBeforeQueuedNamesHolder(t *testing.T) {
	p, c := proxiedClient(t)
	direct := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	holder, err := New(ctx, direct, key, WithContentTemplate("the holder"))
	if err != nil {
		t.Fatal(err)
	}
	p.setDelay(20 * time.Millisecond)
	for _, ms := range []time.Duration{0, 1, 10, 30} {
		timeout := ms * time.Millisecond
		attempt, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		_, err := Acquire(attempt, c, key)
		elapsed := time.Since(start)
		cancel()
		var lockErr *lockfile.LockError
		if !errors.As(err, &lockErr) || !errors.Is(err, lockfile.ErrLocked) ||
			!errors.Is(err, context.DeadlineExceeded) || lockErr.Holder != "the holder" {
			t.Errorf("Acquire with a %v timeout: %v, want a LockError naming %q, "+
				"wrapping ErrLocked and DeadlineExceeded", timeout, err, "the holder")
		}
		if elapsed > timeout+time.Second {
			t.Errorf("Acquire with a %v timeout returned after %v", timeout, elapsed)
		}
	}
	// A lock that is free at the deadline is not reported held.
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	_, err = Acquire(done, direct, key)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, lockfile.ErrLocked) {
		t.Errorf("Acquire of a free lock with a done context: %v, "+
			"want DeadlineExceeded and not ErrLocked", err)
	}
}

// TestRequestsPerLock counts, through etcd's metrics, the requests that
// locks cost: a refused New reads, and neither writes nor grants nor
// revokes, whether or not its client keeps a lease; a client's
// uncontended cycles of New and Close grant and revoke no lease.
func TestRequestsPerLock(t *testing.T) {
	s := startStoppable(t)
	var clients [2]*clientv3.Client
	for i := range clients {
		c, err := newClient(s.clientURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	c, other := clients[0], clients[1]
	ctx := context.Background()
	key := testKey(t)
	refusals := func(what string) {
		t.Helper()
		holder, err := New(ctx, other, key, WithContentTemplate("holder"))
		if err != nil {
			t.Fatal(err)
		}
		before := requests(t, s)
		for range 10 {
			if _, err := New(ctx, c, key); !errors.Is(err, lockfile.ErrLocked) {
				t.Fatalf("New: %v, want ErrLocked", err)
			}
		}
		d := requestsSince(t, s, before)
		t.Logf("10 refused New %s: %v", what, d)
		if d["total"] != 10 || d["LeaseGrant"]+d["LeaseRevoke"]+d["Put"]+d["DeleteRange"] != 0 {
			t.Errorf("10 refused New %s made requests %v, want 10 reads", what, d)
		}
		if err := holder.Close(); err != nil {
			t.Fatal(err)
		}
	}
	refusals("on a new client")
	warmUp(t, c, key)
	before := requests(t, s)
	for range 10 {
		warmUp(t, c, key)
	}
	d := requestsSince(t, s, before)
	t.Logf("10 uncontended cycles: %v", d)
	if d["LeaseGrant"]+d["LeaseRevoke"] != 0 {
		t.Errorf("10 uncontended cycles made requests %v, want no grant and no revoke", d)
	}
	refusals("on a client that keeps a lease")
}

// requests reads the count of unary requests a member has begun to
// serve, by method, and their total.
func requests(t *testing.T, s *etcdServer) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.clientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	counts := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "grpc_server_started_total{") ||
			!strings.Contains(line, `grpc_type="unary"`) {
			continue
		}
		_, method, _ := strings.Cut(line, `grpc_method="`)
		method, _, _ = strings.Cut(method, `"`)
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		counts[method] += v
		counts["total"] += v
	}
	return counts
}

// requestsSince returns the requests made since before, by method.
func requestsSince(t *testing.T, s *etcdServer, before map[string]float64) map[string]float64 {
	t.Helper()
	d := requests(t, s)
	for m, v := range before {
		d[m] -= v
	}
	for m, v := range d {
		if v == 0 {
			delete(d, m)
		}
	}
	return d
}

// TestDeadline checks Deadline against a holder cut off from etcd, both
// ways: it moves with renewals, stops moving at the cut, the lease still
// stands in etcd just before it, and Lost closes at it.
func TestDeadline(t *testing.T) {
	p, c := proxiedClient(t)
	direct := testClient(t)
	ctx := context.Background()
	const ttl = 2 * time.Second
	key := testKey(t)
	begun := time.Now()
	l, err := New(ctx, c, key, WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if d := l.Deadline(); d.Before(begun.Add(ttl)) || d.After(time.Now().Add(ttl)) {
		t.Errorf("Deadline %v after New, want within New's call plus the TTL", d.Sub(begun))
	}
	first := l.Deadline()
	time.Sleep(ttl/3 + 300*time.Millisecond)
	if !l.Deadline().After(first) {
		t.Errorf("Deadline did not move after a renewal")
	}
	p.hold(true, true)
	cut := l.Deadline()
	time.Sleep(time.Until(cut.Add(-200 * time.Millisecond)))
	if l.Deadline() != cut {
		t.Errorf("Deadline moved while etcd was cut off")
	}
	if n := keyCount(t, direct, key); n != 1 {
		t.Errorf("the lease was gone from etcd before Deadline: %d keys", n)
	}
	select {
	case <-l.Lost():
	case <-time.After(time.Until(cut) + time.Second):
		t.Fatal("Lost not closed a second after Deadline")
	}
	lost := time.Now()
	if lost.Before(cut) {
		t.Errorf("Lost closed %v before Deadline", cut.Sub(lost))
	}
	if d := l.Deadline(); d.After(lost) {
		t.Errorf("Deadline %v after Lost closed", d.Sub(lost))
	}
	p.hold(false, false)
}

// keptLeases returns the leases c keeps for its next lock.
func keptLeases(c *clientv3.Client) map[clientv3.LeaseID]bool {
	kept.Lock()
	defer kept.Unlock()
	ids := make(map[clientv3.LeaseID]bool)
	for k, l := range kept.leases {
		if k.client == c {
			ids[l.id] = true
		}
	}
	return ids
}
