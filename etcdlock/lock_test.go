//go:build unix

package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestOptionsRefusedBeforeEtcdIsContacted(t *testing.T) {
	// A nil client would panic if it were used.
	for _, tc := range []struct {
		opt    Option
		option string
	}{
		{WithTTL(500 * time.Millisecond), "WithTTL"},
		{WithTTL(1500 * time.Millisecond), "WithTTL"},
		{WithTTL(-time.Second), "WithTTL"},
		{WithContentTemplate("{pid"), "WithContentTemplate"},
		{WithContentTemplate("{user}"), "WithContentTemplate"},
	} {
		for _, take := range []func(context.Context, *clientv3.Client, string, ...Option) (*Lock, error){New, Acquire} {
			_, err := take(context.Background(), nil, "/k", WithTTL(2*time.Second), tc.opt)
			var optErr *lockfile.OptionError
			if !errors.As(err, &optErr) || optErr.Option != tc.option {
				t.Errorf("got %v, want a *lockfile.OptionError for %s", err, tc.option)
			}
		}
	}
	if _, err := New(context.Background(), nil, ""); err == nil {
		t.Error("an empty key was accepted")
	}
}

func TestNewRefusedNamesHolder(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	l, err := New(ctx, c, key, WithContentTemplate("{pid};{hostname}"))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if want := strconv.Itoa(os.Getpid()) + ";" + host; l.Content() != want {
		t.Errorf("Content() = %q, want %q", l.Content(), want)
	}

	// A second Lock, even of the same process and client, is refused.
	_, err = New(ctx, c, key)
	var lockErr *lockfile.LockError
	if !errors.As(err, &lockErr) || !errors.Is(err, lockfile.ErrLocked) {
		t.Fatalf("second New: %v, want a *lockfile.LockError wrapping ErrLocked", err)
	}
	if lockErr.Holder != l.Content() || lockErr.Path != key {
		t.Errorf("LockError names %q at %q, want %q at %q", lockErr.Holder, lockErr.Path, l.Content(), key)
	}
	assertKeys(t, c, key, 1) // the refused contender left nothing behind

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	assertKeys(t, c, key, 0)
	again, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Token() <= l.Token() {
		t.Errorf("token %d after %d", again.Token(), l.Token())
	}
}

func TestTokenIsCreateRevisionAndGrows(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	var last int64
	for range 20 {
		l, err := New(ctx, c, key)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(ctx, key+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != l.Token() || string(resp.Kvs[0].Value) != l.Content() {
			t.Fatalf("keys %v, want one created at %d holding %q", resp.Kvs, l.Token(), l.Content())
		}
		if l.Token() <= last {
			t.Fatalf("token %d after %d", l.Token(), last)
		}
		last = l.Token()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAcquireTimeoutNamesHolderAndCleansUp(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	leasesBefore := leaseIDs(t, c)
	l, err := New(ctx, c, key, WithContentTemplate("the holder"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	for _, timeout := range []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond} {
		waitCtx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		_, err = Acquire(waitCtx, c, key)
		elapsed := time.Since(start)
		cancel()
		var lockErr *lockfile.LockError
		if !errors.As(err, &lockErr) || !errors.Is(err, lockfile.ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire: %v, want a *lockfile.LockError wrapping ErrLocked and DeadlineExceeded", err)
		}
		if lockErr.Holder != "the holder" {
			t.Errorf("Holder = %q", lockErr.Holder)
		}
		if elapsed < timeout || elapsed > timeout+time.Second {
			t.Errorf("Acquire with a %v timeout returned after %v", timeout, elapsed)
		}
	}
	// The abandoned waits' keys and leases go, in the background.
	waitFor(t, "the waiters' keys and leases to go", func() bool {
		return keyCount(t, c, key) == 1 && len(newLeases(t, c, leasesBefore)) == 1
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The holder's lease is kept for the client's next lock.
	if kept := keptLeases(c); len(kept) != 1 || !kept[l.lease.id] {
		t.Errorf("kept leases %v, want the holder's, %x", kept, l.lease.id)
	}
	assertKeys(t, c, key, 0)
}

// TestCancelledAttemptsLeaveNoKeys ends Acquires at every step of an
// attempt, the grant and the put of the key included: a key put by a call
// that ctx cancelled on its way goes with its lease all the same.
func TestCancelledAttemptsLeaveNoKeys(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 200 {
		waitCtx, cancel := context.WithTimeout(ctx, time.Duration(i%20)*100*time.Microsecond)
		_, err := Acquire(waitCtx, c, key)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire: %v, want DeadlineExceeded", err)
		}
	}
	waitFor(t, "the waiters' keys to go", func() bool { return keyCount(t, c, key) == 1 })
}

// TestWaiterKeyDeleted deletes a waiter's key while it waits: when the
// holder releases the lock, the waiter must not take it with a key that is
// gone, but start over with a new one.
func TestWaiterKeyDeleted(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	holder, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lock)
	go func() {
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l, err := Acquire(waitCtx, c, key, WithContentTemplate("waiter"))
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitFor(t, "the waiter to queue", func() bool { return keyCount(t, c, key) == 2 })
	resp, err := c.Get(ctx, key+"/", clientv3.WithLastCreate()...)
	if err != nil {
		t.Fatal(err)
	}
	del, err := c.Delete(ctx, string(resp.Kvs[0].Key))
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		return
	}
	defer l.Close()
	resp, err = c.Get(ctx, key+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != l.Token() || string(resp.Kvs[0].Value) != "waiter" {
		t.Fatalf("keys %v, want one created at %d holding %q", resp.Kvs, l.Token(), "waiter")
	}
	if l.Token() <= del.Header.Revision {
		t.Errorf("token %d, not after the deletion at %d", l.Token(), del.Header.Revision)
	}
	select {
	case <-l.Lost():
		t.Fatal("Lost closed")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestAcquireWaitsForRelease(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lock)
	go func() {
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		next, err := Acquire(waitCtx, c, key)
		if err != nil {
			t.Error(err)
		}
		got <- next
	}()
	// Wait until the waiter's key is there, behind the holder's.
	waitFor(t, "the waiter to queue", func() bool { return keyCount(t, c, key) == 2 })
	select {
	case <-got:
		t.Fatal("Acquire returned while the lock was held")
	case <-time.After(100 * time.Millisecond):
	}
	released := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	next := <-got
	if next == nil {
		return
	}
	t.Logf("handoff in one process: %v", time.Since(released))
	defer next.Close()
	if next.Token() <= l.Token() {
		t.Errorf("token %d after %d", next.Token(), l.Token())
	}
}

func TestLostWhenLeaseRevokedBehindItsBack(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	l, err := New(ctx, c, key, WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
		t.Fatal("Lost closed while the lock is held")
	case <-time.After(3 * time.Second): // longer than the TTL: the lease is kept alive
	}
	// Someone else, with a client of their own, revokes the lease.
	other := testClient(t)
	resp, err := other.Get(ctx, key+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("keys %v, %v", resp, err)
	}
	revoked := time.Now()
	if _, err := other.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
		t.Logf("Lost closed %v after the revocation", time.Since(revoked))
	case <-time.After(2 * time.Second):
		t.Fatal("Lost not closed 2s after the lease was revoked")
	}
	// The lock is free for others now.
	next, err := New(ctx, other, key)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	start := time.Now()
	err = l.Close()
	if !errors.Is(err, ErrLost) {
		t.Errorf("Close after loss: %v, want ErrLost", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close after loss took %v", d)
	}
	// Closing the lost lock did not touch the new holder's.
	assertKeys(t, c, key, 1)
}

func TestLostWhenKeyDeleted(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	leasesBefore := leaseIDs(t, c)
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, key+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(2 * time.Second):
		t.Fatal("Lost not closed 2s after the key was deleted")
	}
	if err := l.Close(); !errors.Is(err, ErrLost) {
		t.Errorf("Close after loss: %v, want ErrLost", err)
	}
	// The lease, still alive when the key went, is revoked at the loss.
	waitFor(t, "the lease to go", func() bool { return len(newLeases(t, c, leasesBefore)) == 0 })
}

// TestReleasedAtLoss ends a lease by the package's clock while etcd keeps
// it, as renewals answered too late do: the lease must be revoked at once,
// before Close, so that the lock does not stay held in etcd, and Close must
// then report the loss at once.
func TestReleasedAtLoss(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	l, err := New(ctx, c, key) // the default TTL, longer than the waits below
	if err != nil {
		t.Fatal(err)
	}
	go l.lease.finish(l.lease.expiry()) // what the clock does when the lease's time runs out
	select {
	case <-l.Lost():
	case <-time.After(time.Second):
		t.Fatal("Lost not closed when the lease's time ran out")
	}
	lost := time.Now()
	other := testClient(t)
	var next *Lock
	waitFor(t, "another client to take the lock", func() bool {
		next, err = New(ctx, other, key)
		return err == nil
	})
	t.Logf("lock free %v after Lost closed", time.Since(lost))
	defer next.Close()
	start := time.Now()
	if err := l.Close(); !errors.Is(err, ErrLost) {
		t.Errorf("Close: %v, want ErrLost", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	assertKeys(t, c, key, 1) // the next holder's
}

func TestLostClosedByClose(t *testing.T) {
	c := testClient(t)
	l, err := New(context.Background(), c, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	default:
		t.Fatal("Lost still open after Close")
	}
}

func TestLostWhenClientCloses(t *testing.T) {
	needEtcd(t)
	c, err := newClient(shared.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(context.Background(), c, testKey(t), WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-l.Lost():
	case <-time.After(2 * time.Second):
		t.Fatal("Lost not closed 2s after the client was closed")
	}
	if err := l.Close(); !errors.Is(err, ErrLost) {
		t.Errorf("Close: %v, want ErrLost", err)
	}
}

// waitFor polls cond until it holds, for at most 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func keyCount(t *testing.T, c *clientv3.Client, key string) int {
	t.Helper()
	resp, err := c.Get(context.Background(), key+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return int(resp.Count)
}

func assertKeys(t *testing.T, c *clientv3.Client, key string, want int) {
	t.Helper()
	if n := keyCount(t, c, key); n != want {
		t.Errorf("%d keys under %s/, want %d", n, key, want)
	}
}

// leaseIDs returns the leases etcd holds now.
func leaseIDs(t *testing.T, c *clientv3.Client) map[clientv3.LeaseID]bool {
	t.Helper()
	resp, err := c.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[clientv3.LeaseID]bool)
	for _, l := range resp.Leases {
		ids[l.ID] = true
	}
	return ids
}

// newLeases returns the leases etcd holds now that it did not in before.
// Other tests' leases may expire meanwhile; those do not count.
func newLeases(t *testing.T, c *clientv3.Client, before map[clientv3.LeaseID]bool) []clientv3.LeaseID {
	t.Helper()
	var ids []clientv3.LeaseID
	for id := range leaseIDs(t, c) {
		if !before[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

func TestNoGoroutinesOrLeasesLeft(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	warmUp(t, c, key)
	time.Sleep(100 * time.Millisecond)
	goroutines, leases := runtime.NumGoroutine(), leaseIDs(t, c)

	holder, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := New(ctx, c, key); !errors.Is(err, lockfile.ErrLocked) {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := Acquire(waitCtx, c, key)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
	got := make(chan *Lock)
	go func() {
		l, err := Acquire(ctx, c, key)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitFor(t, "the waiter to queue", func() bool { return keyCount(t, c, key) == 2 })
	holder.Close()
	if l := <-got; l != nil {
		l.Close()
	}
	waitFor(t, fmt.Sprintf("goroutines and leases to go (%d goroutines before)", goroutines), func() bool {
		return runtime.NumGoroutine() <= goroutines && len(newLeases(t, c, leases)) == 0
	})
}

func TestPassingFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("etcdlock: x: %w", status.Error(codes.Unavailable, "connection reset by peer")), true},
		{fmt.Errorf("etcdlock: x: %w", rpctypes.ErrLeaderChanged), true},
		{rpctypes.ErrNoLeader, true},
		{status.Error(codes.PermissionDenied, "no"), false},
		{rpctypes.ErrPermissionDenied, false},
		{errors.New("other"), false},
	} {
		if got := passing(tc.err); got != tc.want {
			t.Errorf("passing(%v) = %v", tc.err, got)
		}
	}
}

// warmUp takes and releases a lock on c, as a long-running service's client
// has done before: the client connects and starts its watch stream on first
// use.
func warmUp(t *testing.T, c *clientv3.Client, key string) {
	t.Helper()
	l, err := New(context.Background(), c, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLaterOptionReplacesEarlier(t *testing.T) {
	c := testClient(t)
	l, err := New(context.Background(), c, testKey(t), WithTTL(time.Millisecond), WithTTL(3*time.Second),
		WithContentTemplate("{pid"), WithContentTemplate("fixed"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.lease.ttl != 3*time.Second || l.Content() != "fixed" {
		t.Errorf("TTL %v, content %q; want 3s and %q", l.lease.ttl, l.Content(), "fixed")
	}
}

// TestMutexInterop takes one lock with etcdlock and with etcd's
// concurrency.Mutex, each way round: each refuses the other's holder, and
// a waiter of either gets the lock when the other's holder releases it.
func TestMutexInterop(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	session := func() *concurrency.Session {
		s, err := concurrency.NewSession(testClient(t), concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	t.Run("etcdlock holds", func(t *testing.T) {
		key := testKey(t)
		l, err := New(ctx, c, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := concurrency.NewMutex(session(), key).TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
			t.Fatalf("Mutex.TryLock: %v, want ErrLocked", err)
		}
		m := concurrency.NewMutex(session(), key)
		locked := make(chan error)
		go func() { locked <- m.Lock(ctx) }()
		waitFor(t, "the Mutex to queue", func() bool { return keyCount(t, c, key) == 2 })
		select {
		case err := <-locked:
			t.Fatalf("Mutex.Lock returned %v while etcdlock held the lock", err)
		case <-time.After(100 * time.Millisecond):
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-locked; err != nil {
			t.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Mutex holds", func(t *testing.T) {
		key := testKey(t)
		m := concurrency.NewMutex(session(), key)
		if err := m.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := New(ctx, c, key); !errors.Is(err, lockfile.ErrLocked) {
			t.Fatalf("New: %v, want ErrLocked", err)
		}
		got := make(chan *Lock)
		go func() {
			waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			l, err := Acquire(waitCtx, c, key)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		waitFor(t, "the waiter to queue", func() bool { return keyCount(t, c, key) == 2 })
		select {
		case <-got:
			t.Fatal("Acquire returned while the Mutex held the lock")
		case <-time.After(100 * time.Millisecond):
		}
		if err := m.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if l := <-got; l != nil {
			l.Close()
		}
	})
}

// TestIsOwnerFencesTxn writes through a transaction guarded by IsOwner: it
// succeeds while the lock is held, and fails once the lock was lost and
// taken by another holder.
func TestIsOwnerFencesTxn(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	key := testKey(t)
	data := key + "-data"
	write := func(l *Lock, value string) bool {
		t.Helper()
		resp, err := c.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut(data, value)).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	first, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	if !write(first, "first") {
		t.Fatal("the holder's guarded write failed")
	}
	if _, err := c.Delete(ctx, key+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	<-first.Lost()
	second, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if write(first, "late") {
		t.Error("a guarded write of the former holder succeeded")
	}
	if !write(second, "second") {
		t.Error("the new holder's guarded write failed")
	}
	resp, err := c.Get(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Kvs[0].Value); got != "second" {
		t.Errorf("data %q, want %q", got, "second")
	}
	first.Close()
}

// TestErrorsNamePackageOnce checks the text of a lost lock's Close and of a
// New that failed: "etcdlock: <op> <key>: <cause>", with one prefix.
func TestErrorsNamePackageOnce(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	key := testKey(t)
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, key+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	<-l.Lost()
	err = l.Close()
	if want := "etcdlock: release " + key + ": lock lost while held: its key was deleted"; err == nil || err.Error() != want {
		t.Errorf("Close: %v, want %q", err, want)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = New(cancelled, c, key)
	if err == nil || !strings.HasPrefix(err.Error(), "etcdlock: lock "+key+": ") || strings.Count(err.Error(), "etcdlock: ") != 1 {
		t.Errorf("New with a cancelled context: %v, want one prefix %q", err, "etcdlock: lock "+key+": ")
	}
}

// TestOneRenewer counts, through etcd's metrics, the renewals of a held
// lock's lease and the keep-alive streams opened for it: one renewal every
// third of the TTL on a single stream.
func TestOneRenewer(t *testing.T) {
	s := startStoppable(t)
	c, err := newClient(s.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const ttl, window = 3 * time.Second, 3 * time.Second
	l, err := New(context.Background(), c, testKey(t), WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	renewals, streams := metric(t, s, renewedMetric), metric(t, s, streamsMetric)
	time.Sleep(window)
	renewals, streams = metric(t, s, renewedMetric)-renewals, metric(t, s, streamsMetric)-streams
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v renewals on %v keep-alive streams in %v at TTL %v", renewals, streams, window, ttl)
	if most := float64(window/(ttl/3)) + 1; renewals < 1 || renewals > most {
		t.Errorf("%v renewals in %v, want 1 to %v", renewals, window, most)
	}
	if streams > 1 {
		t.Errorf("%v keep-alive streams opened, want at most 1", streams)
	}
}

// TestWaiterAheadGivesUp has a waiter give up while another waits behind
// it, watching its key: the one behind must go on waiting for the holder,
// not take the lock when the key it watched goes.
func TestWaiterAheadGivesUp(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	holder, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	aheadCtx, giveUp := context.WithCancel(ctx)
	ahead := make(chan error)
	go func() {
		_, err := Acquire(aheadCtx, c, key)
		ahead <- err
	}()
	waitFor(t, "the first waiter to queue", func() bool { return keyCount(t, c, key) == 2 })
	got := make(chan *Lock)
	go func() {
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l, err := Acquire(waitCtx, c, key)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitFor(t, "the second waiter to queue", func() bool { return keyCount(t, c, key) == 3 })
	giveUp()
	if err := <-ahead; !errors.Is(err, context.Canceled) {
		t.Errorf("first waiter: %v, want Canceled", err)
	}
	select {
	case <-got:
		t.Fatal("the second waiter took the lock while it was held")
	case <-time.After(200 * time.Millisecond):
	}
	assertKeys(t, c, key, 2)
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if l := <-got; l != nil {
		l.Close()
	}
}

// TestCloseReportsEarlyDeletion deletes the key right after New, before
// the Lock watches it: Close must still report the loss, and the client
// must not keep a lease that may have gone with the key.
func TestCloseReportsEarlyDeletion(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, key+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrLost) {
		t.Errorf("Close: %v, want ErrLost", err)
	}
	if kept := keptLeases(c); len(kept) != 0 {
		t.Errorf("the client keeps leases %v after the loss", kept)
	}
}

// TestKeptLeaseRevokedBehindItsBack revokes the lease a client keeps for
// its next lock, before the client's renewals can notice: New must take
// the lock all the same, on a new lease.
func TestKeptLeaseRevokedBehindItsBack(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	key := testKey(t)
	warmUp(t, c, key)
	for id := range keptLeases(c) {
		if _, err := testClient(t).Revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	l, err := New(ctx, c, key)
	if err != nil {
		t.Fatalf("New after the kept lease was revoked: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
