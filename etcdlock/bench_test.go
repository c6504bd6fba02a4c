//go:build unix

package etcdlock

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// BenchmarkHandoff measures the time from a holder's release to the
// waiter's holding the lock, for etcdlock and for etcd's concurrency.Mutex
// side by side. Each op is one handoff: the waiter starts waiting, and the
// holder releases the lock 5 to 40 ms later, the case in which a watch
// from a past revision waits for etcd to catch it up, every 100 ms. On a
// busy cluster another client writes a key every millisecond meanwhile.
// It reports the median and the longest handoff; run it with -benchtime
// 20x or more.
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
	for i := range b.N {
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
		time.Sleep(time.Duration(5+5*(i%8)) * time.Millisecond)
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
