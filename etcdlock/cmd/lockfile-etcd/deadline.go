package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/golockfile/lockfile/etcdlock"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A leaseClock gives the time, by this host's clock, before which etcd
// cannot let the lock's lease expire. It moves later as the lease is
// renewed; etcdlock's Lock.Deadline is one.
type leaseClock interface {
	Deadline() time.Time
}

// ttlPoller is a leaseClock that asks etcd how long the lease has left.
// etcd answers in whole seconds, rounded down, counted from when it handled
// the question, which is after it was sent: so the lease cannot expire
// before the sending plus the answer.
type ttlPoller struct {
	mu       sync.Mutex
	deadline time.Time
}

// watchLease returns the lock's leaseClock, and a function that stops it.
func watchLease(ctx context.Context, client *clientv3.Client, l *etcdlock.Lock,
	ttl time.Duration) (leaseClock, func(), error) {
	if lc, ok := any(l).(leaseClock); ok {
		return lc, func() {}, nil
	}
	id, err := leaseOf(ctx, client, l)
	if err != nil {
		return nil, nil, err
	}
	p := new(ttlPoller)
	if err := p.poll(ctx, client, id); err != nil {
		return nil, nil, err
	}
	every := min(max(ttl/10, 100*time.Millisecond), time.Second)
	pollCtx, stop := context.WithCancel(client.Ctx())
	go func() {
		for pollCtx.Err() == nil {
			callCtx, cancel := context.WithTimeout(pollCtx, ttl/3)
			p.poll(callCtx, client, id)
			cancel()
			select {
			case <-pollCtx.Done():
			case <-time.After(every):
			}
		}
	}()
	return p, stop, nil
}

var errNoKey = errors.New("the lock's key is gone")

// leaseOf returns the ID of the lease of the lock's key.
func leaseOf(ctx context.Context, client *clientv3.Client,
	l *etcdlock.Lock) (clientv3.LeaseID, error) {
	resp, err := client.Get(ctx, l.Key()+"/", clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	for _, kv := range resp.Kvs {
		if kv.CreateRevision == l.Token() {
			return clientv3.LeaseID(kv.Lease), nil
		}
	}
	return 0, errNoKey
}

func (p *ttlPoller) poll(ctx context.Context, client *clientv3.Client, id clientv3.LeaseID) error {
	sent := time.Now()
	resp, err := client.TimeToLive(ctx, id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if resp.TTL < 0 { // the lease is gone; 0 is less than a second left
		p.deadline = sent
		return nil
	}
	if d := sent.Add(time.Duration(resp.TTL) * time.Second); d.After(p.deadline) {
		p.deadline = d
	}
	return nil
}

func (p *ttlPoller) Deadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadline
}

// stopLeads returns how long before the lease's deadline COMMAND's group
// gets SIGKILL, and SIGTERM: SIGKILL early enough for the group to be dead
// by the deadline, SIGTERM early enough to leave COMMAND time to end
// cleanly.
func stopLeads(ttl time.Duration) (kill, term time.Duration) {
	kill = min(max(ttl/10, 200*time.Millisecond), time.Second)
	return kill, kill + min(max(ttl/5, 300*time.Millisecond), 3*time.Second)
}
