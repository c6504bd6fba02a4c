//go:build unix

package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/golockfile/lockfile"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// BenchmarkHandoff measures the time from a holder's release to the
// waiter's holding the lock, for etcdlock and for etcd's concurrency.Mutex
// side by side. Each op is one handoff: the waiter starts waiting, and the
// holder releases the lock 5 to 40 ms later, the case in which a watch
// from a past revision waits for etcd to catch it up, every 100 ms. A
// random pause of up to 100 ms between rounds keeps the rounds from
// falling into step with those catch-ups. On a busy cluster another
// client writes a key every millisecond meanwhile. It reports the median
// and the longest handoff; run it with -benchtime 20x or more.
func BenchmarkHandoff(b *testing.B) {
	needEtcd(b)
	for _, busy := range []bool{false, true} {
		for _, lock := range []handoffLock{etcdlockHandoff, mutexHandoff} {
			name := fmt.Sprintf("%s/busy=%v", lock.name, busy)
			b.Run(name, func(b *testing.B) { benchmarkHandoff(b, lock, busy) })
		}
	}
}

// A handoffLock takes a lock on a client, waiting if wait is set, and
// returns the function that releases it.
type handoffLock struct {
	name string
	take func(c *clientv3.Client, key string, wait bool) (release func(), err error)
}

var etcdlockHandoff = handoffLock{"etcdlock", func(c *clientv3.Client, key string, wait bool) (func(), error) {
	take := New
	if wait {
		take = Acquire
	}
	l, err := take(context.Background(), c, key)
	if err != nil {
		return nil, err
	}
	return func() { l.Close() }, nil
}}

var mutexHandoff = handoffLock{"Mutex", func(c *clientv3.Client, key string, wait bool) (func(), error) {
	s, err := concurrency.NewSession(c, concurrency.WithTTL(int(DefaultTTL/time.Second)))
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(s, key)
	if wait {
		err = m.Lock(context.Background())
	} else {
		err = m.TryLock(context.Background())
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return func() { s.Close() }, nil // revokes the session's lease
}}

func benchmarkHandoff(b *testing.B, lock handoffLock, busy bool) {
	var clients [3]*clientv3.Client
	for i := range clients {
		c, err := newClient(shared.clientURL)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	holderC, waiterC, writerC := clients[0], clients[1], clients[2]
	key := fmt.Sprintf("/etcdlock-bench/%s-%d", lock.name, time.Now().UnixNano())
	if busy {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				writerC.Put(ctx, key+"-traffic", "x")
				<-tick.C
			}
		}()
	}
	for _, c := range []*clientv3.Client{holderC, waiterC} { // start the clients' streams
		release, err := lock.take(c, key, false)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
	var handoffs []time.Duration
	b.ResetTimer()
	for range b.N {
		time.Sleep(rand.N(100 * time.Millisecond))
		release, err := lock.take(holderC, key, false)
		if err != nil {
			b.Fatal(err)
		}
		got, done := make(chan time.Time, 1), make(chan error, 1)
		go func() {
			release, err := lock.take(waiterC, key, true)
			got <- time.Now()
			if err == nil {
				release()
			}
			done <- err
		}()
		time.Sleep(5*time.Millisecond + rand.N(35*time.Millisecond))
		released := time.Now()
		release()
		handoffs = append(handoffs, (<-got).Sub(released))
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(handoffs)
	b.ReportMetric(float64(handoffs[len(handoffs)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(handoffs[len(handoffs)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkCycle measures, for etcdlock and for a concurrency.Mutex on one
// Session, side by side, uncontended cycles (a lock taken and released by
// one client, over and over) and refusals (a try of a lock that another
// client holds). Each op is one cycle of each, the first in turn, so
// that both see the same load. It reports each one's rate in cycles/s, and etcdlock's
// rate over the Mutex's.
func BenchmarkCycle(b *testing.B) {
	needEtcd(b)
	for _, held := range []bool{false, true} {
		name := "free"
		if held {
			name = "refused"
		}
		b.Run(name, func(b *testing.B) { benchmarkCycle(b, held) })
	}
}

// A cycleLock names a lock and makes, for a client and key, the function
// that takes the lock and, if it was free, releases it again; that fails
// unless the lock was free or, with held, refused. done ends what the
// cycles share.
type cycleLock struct {
	name string
	make func(c *clientv3.Client, key string, held bool) (cycle func() error, done func(), err error)
}

var etcdlockCycle = cycleLock{"etcdlock", func(c *clientv3.Client, key string, held bool) (
	func() error, func(), error) {
	ctx := context.Background()
	return func() error {
		l, err := New(ctx, c, key)
		if held {
			if !errors.Is(err, lockfile.ErrLocked) {
				return fmt.Errorf("New of a held lock: %v", err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		return l.Close()
	}, func() {}, nil
}}

var mutexCycle = cycleLock{"Mutex", func(c *clientv3.Client, key string, held bool) (
	func() error, func(), error) {
	ctx := context.Background()
	s, err := concurrency.NewSession(c, concurrency.WithTTL(int(DefaultTTL/time.Second)))
	if err != nil {
		return nil, nil, err
	}
	m := concurrency.NewMutex(s, key)
	return func() error {
		err := m.TryLock(ctx)
		if held {
			if !errors.Is(err, concurrency.ErrLocked) {
				return fmt.Errorf("TryLock of a held lock: %v", err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		return m.Unlock(ctx)
	}, func() { s.Close() }, nil
}}

func benchmarkCycle(b *testing.B, held bool) {
	locks := []cycleLock{etcdlockCycle, mutexCycle}
	cycles := make([]func() error, len(locks))
	for i, lock := range locks {
		var clients [2]*clientv3.Client
		for i := range clients {
			c, err := newClient(shared.clientURL)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			clients[i] = c
		}
		key := fmt.Sprintf("/etcdlock-bench/cycle-%s-%d", lock.name, time.Now().UnixNano())
		if held {
			holder, err := New(context.Background(), clients[1], key)
			if err != nil {
				b.Fatal(err)
			}
			defer holder.Close()
		}
		cycle, done, err := lock.make(clients[0], key, held)
		if err != nil {
			b.Fatal(err)
		}
		defer done()
		if err := cycle(); err != nil { // connect, and for etcdlock, the lease to keep
			b.Fatal(err)
		}
		cycles[i] = cycle
	}
	spent := make([]time.Duration, len(locks))
	b.ResetTimer()
	for n := range b.N {
		for j := range cycles {
			i := (n + j) % len(cycles) // each goes first in turn
			start := time.Now()
			if err := cycles[i](); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(start)
		}
	}
	b.StopTimer()
	for i, lock := range locks {
		b.ReportMetric(float64(b.N)/spent[i].Seconds(), lock.name+"-cycles/s")
	}
	b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "etcdlock/Mutex")
}
