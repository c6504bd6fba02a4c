package etcdlock

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A keeper renews a lease and keeps, by this process's clock, a time before
// which etcd cannot have let the lease expire: the time at which a request
// that etcd answered with a grant or a renewal was sent, plus the TTL. etcd
// starts a lease's TTL again when it handles such a request, which is after
// it was sent. Once that time has passed without a newer answer, the keeper
// counts the lease as ended.
//
// The session that the Mutex needs renews the lease too, but its renewals
// cannot serve as this clock: the client tells no one when a renewal was
// sent, and gives a lease DialTimeout+1s to answer its first renewal, whatever
// the TTL, before it stops renewing it.
type keeper struct {
	client *clientv3.Client
	id     clientv3.LeaseID
	ttl    time.Duration

	// ended is cancelled when the lease has ended or may have: its time
	// ran out, etcd said it is gone, or the client was closed.
	ended    context.Context
	setEnded context.CancelFunc
	stop     context.CancelFunc // ends the renewals; ended stays as it is

	mu    sync.Mutex
	until time.Time
}

// renewRetry is how soon a keeper tries again after a renewal failed, unless
// the lease's time runs out sooner.
const renewRetry = 100 * time.Millisecond

// newKeeper starts renewing lease id, granted with ttl by a request sent
// after begun.
func newKeeper(client *clientv3.Client, id clientv3.LeaseID, begun time.Time, ttl time.Duration) *keeper {
	k := &keeper{client: client, id: id, ttl: ttl, until: begun.Add(ttl)}
	k.ended, k.setEnded = context.WithCancel(context.Background())
	var ctx context.Context
	ctx, k.stop = context.WithCancel(client.Ctx())
	go k.run(ctx)
	return k
}

func (k *keeper) deadline() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.until
}

func (k *keeper) run(ctx context.Context) {
	// Renewing every third of the TTL leaves two more tries before the
	// lease would expire.
	timer := time.NewTimer(time.Until(k.deadline().Add(-k.ttl * 2 / 3)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if k.client.Ctx().Err() != nil {
				k.setEnded() // nothing renews the lease any more
			}
			return
		case <-timer.C:
		}
		sent := time.Now()
		until := k.deadline()
		if !sent.Before(until) {
			k.setEnded()
			return
		}
		// A try stuck on a connection that died quietly would otherwise
		// use up all the time left, while a try on a new one may pass.
		tryUntil := sent.Add(k.ttl / 3)
		if until.Before(tryUntil) {
			tryUntil = until
		}
		renewCtx, cancel := context.WithDeadline(ctx, tryUntil)
		resp, err := k.client.KeepAliveOnce(renewCtx, k.id)
		cancel()
		switch {
		case err == nil:
			until = sent.Add(time.Duration(resp.TTL) * time.Second)
			k.mu.Lock()
			k.until = until
			k.mu.Unlock()
			timer.Reset(time.Until(until.Add(-k.ttl * 2 / 3)))
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			k.setEnded()
			return
		default:
			timer.Reset(min(renewRetry, time.Until(until)))
		}
	}
}
