package etcdlock

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// kept holds, for each client and TTL, one lease that no lock uses, kept
// for the client's next lock as a concurrency.Session keeps its lease, so
// that a lock costs neither a grant nor a revocation. It is package state
// because a client cannot carry it; an entry goes when its lease ends, as
// it does once the client is closed.
var kept = struct {
	sync.Mutex
	leases map[keptKey]*lease
}{leases: make(map[keptKey]*lease)}

type keptKey struct {
	client *clientv3.Client
	ttl    time.Duration
}

// takeKept returns the lease kept for client and ttl, if one is kept and
// has not ended, and no longer keeps it.
func takeKept(client *clientv3.Client, ttl time.Duration) *lease {
	kept.Lock()
	defer kept.Unlock()
	k := keptKey{client, ttl}
	l, ok := kept.leases[k]
	if !ok {
		return nil
	}
	delete(kept.leases, k)
	if l.ended.Err() != nil {
		return nil
	}
	return l
}

// keep keeps l, which holds no key, for its client's next lock, unless a
// lease is kept already or l has ended; then it revokes l in the
// background.
func keep(l *lease) {
	k := keptKey{l.client, l.asked}
	kept.Lock()
	if _, full := kept.leases[k]; !full && l.ended.Err() == nil {
		kept.leases[k] = l
		if !l.hooked {
			l.hooked = true
			context.AfterFunc(l.ended, func() {
				kept.Lock()
				if kept.leases[k] == l {
					delete(kept.leases, k)
				}
				kept.Unlock()
			})
		}
		kept.Unlock()
		return
	}
	kept.Unlock()
	go l.finish(time.Now().Add(courtesyTimeout))
}
