package etcdlock

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A lease is a contender's etcd lease, renewed by this package alone on a
// keep-alive stream of its own. Its clock: etcd restarts a lease's TTL when
// it handles a grant or a renewal, which is after the request was sent, so
// it cannot let the lease expire before the TTL has passed from the sending
// of the last request it answered. The client's own keep-alive cannot give
// that time: it does not say when a renewal was sent.
type lease struct {
	client *clientv3.Client
	id     clientv3.LeaseID
	asked  time.Duration // the TTL asked for, which names the lease's pool
	ttl    time.Duration // as granted

	// ended is done once the lease has ended or may have: its time ran
	// out, etcd said it is gone, the client was closed, or finish began.
	ended context.Context
	end   context.CancelFunc
	stop  context.CancelFunc // stops the renewals

	mu        sync.Mutex
	until     time.Time // etcd cannot let the lease expire before
	lastSent  time.Time // the sending of the last request that may renew it
	finishing bool
	finished  chan struct{} // closed once finish has ended
	finishErr error         // finish's result, set before finished closes

	hooked bool // its end removes it from kept; guarded by kept
}

// renewRetry is how soon a renewal that failed is tried again, on a new
// stream, unless the lease's time runs out sooner.
const renewRetry = 100 * time.Millisecond

// grant grants a lease of ttl and starts renewing it.
func grant(ctx context.Context, client *clientv3.Client, ttl time.Duration) (*lease, error) {
	sent := time.Now()
	resp, err := client.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return nil, err
	}
	l := &lease{client: client, id: resp.ID, asked: ttl, ttl: time.Duration(resp.TTL) * time.Second,
		finished: make(chan struct{})}
	l.until, l.lastSent = sent.Add(l.ttl), sent
	l.ended, l.end = context.WithCancel(context.Background())
	renewCtx, stop := context.WithCancel(client.Ctx())
	l.stop = stop
	go l.renew(renewCtx)
	return l, nil
}

// obtain returns a lease for an attempt: the one the client keeps, or a
// new one. The grant is not bound to ctx: a lease that etcd grants after
// ctx has ended is revoked, which it could not be if the answer were
// dropped.
func obtain(ctx context.Context, client *clientv3.Client, ttl time.Duration) (*lease, error) {
	if l := takeKept(client, ttl); l != nil {
		return l, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type granted struct {
		l   *lease
		err error
	}
	result := make(chan granted, 1)
	go func() {
		grantCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
		defer cancel()
		l, err := grant(grantCtx, client, ttl)
		result <- granted{l, err}
	}()
	select {
	case r := <-result:
		return r.l, r.err
	case <-ctx.Done():
		go func() {
			if r := <-result; r.err == nil {
				r.l.finish(time.Now().Add(courtesyTimeout))
			}
		}()
		return nil, ctx.Err()
	}
}

// deadline returns the time before which etcd cannot let the lease expire.
func (l *lease) deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// renew renews the lease a third of the TTL after each answered renewal,
// leaving two more tries before it could expire, until ctx ends or the
// lease does.
func (l *lease) renew(ctx context.Context) {
	var s *keepAlive
	defer func() { s.close() }()
	until := l.deadline()
	timer := time.NewTimer(time.Until(until.Add(-l.ttl * 2 / 3)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if l.client.Ctx().Err() != nil {
				l.finishWithout() // no one can renew or revoke it any more
			}
			return
		case <-timer.C:
		}
		sent := time.Now()
		if !sent.Before(until) {
			s.close()
			l.finish(l.expiry()) // it may live on in etcd: revoke it
			return
		}
		if s == nil {
			s = openKeepAlive(ctx, l.client)
		}
		l.mu.Lock()
		l.lastSent = sent
		l.mu.Unlock()
		// A try stuck on a connection that died quietly would use up all
		// the time left, while a try on a new stream may pass.
		ttl, err := s.renew(l.id, earlier(sent.Add(l.ttl/3), until))
		switch {
		case err == nil && ttl > 0:
			until = sent.Add(ttl)
			l.mu.Lock()
			l.until = until
			l.mu.Unlock()
			timer.Reset(time.Until(until.Add(-l.ttl * 2 / 3)))
		case err == nil: // etcd answers a renewal of a lease it lacks with TTL 0
			l.finishWithout()
			return
		default:
			s.close()
			s = nil
			timer.Reset(min(renewRetry, time.Until(until)))
		}
	}
}

// expiry returns the time by which etcd has let the lease expire if it
// was not renewed: the TTL after the sending of the last request that
// could renew it.
func (l *lease) expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSent.Add(l.ttl)
}

// finish ends the lease: it stops the renewals, ends l.ended, and revokes
// the lease, which deletes its keys, trying again while etcd fails until
// deadline; then it closes l.finished. Only the first call does this;
// every call returns once it is done, with its error: errLeaseEnded if
// etcd had no such lease.
func (l *lease) finish(deadline time.Time) error {
	if l.begin() {
		l.finishErr = l.revoke(deadline)
		close(l.finished)
	}
	<-l.finished
	return l.finishErr
}

// revoke revokes the lease, trying again while etcd fails until deadline.
func (l *lease) revoke(deadline time.Time) error {
	for n := 0; ; n++ {
		ctx, cancel := context.WithDeadline(l.client.Ctx(), earlier(time.Now().Add(revokeTry), deadline))
		_, err := l.client.Revoke(ctx, l.id)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, rpctypes.ErrLeaseNotFound) && n == 0:
			return errLeaseEnded
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return nil // revoked by an earlier try whose answer was lost
		case l.client.Ctx().Err() != nil || !time.Now().Before(deadline):
			return err
		}
	}
}

// finishWithout ends the lease as finish does, but without revoking it:
// etcd has no such lease, or the client can no longer reach it.
func (l *lease) finishWithout() {
	if l.begin() {
		close(l.finished)
	}
}

// begin stops the renewals and ends l.ended, and reports whether this is
// the first call, which must close l.finished.
func (l *lease) begin() bool {
	l.mu.Lock()
	first := !l.finishing
	l.finishing = true
	l.mu.Unlock()
	if first {
		l.stop()
		l.end()
	}
	return first
}

// revokeTry bounds one try of a revocation or of a release, and
// courtesyTimeout the calls that must not keep a caller waiting on an
// unresponsive cluster: a revocation in the background, the deletion of an
// abandoned attempt's key, and the read of the holder by an Acquire whose
// context has ended.
const (
	revokeTry       = time.Second
	courtesyTimeout = time.Second
)

// A keepAlive is a keep-alive stream that carries one renewal at a time.
type keepAlive struct {
	cancel context.CancelFunc
	ready  chan struct{} // closed once stream is set, or the stream failed
	stream pb.Lease_LeaseKeepAliveClient
	ttls   chan int64 // the answers; closed when the stream ends
}

// openKeepAlive opens a stream in the background: opening can wait for a
// connection, and renew bounds every wait.
func openKeepAlive(ctx context.Context, client *clientv3.Client) *keepAlive {
	// A member that has lost its leader ends the stream, so that the next
	// one goes to a member that can renew.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	s := &keepAlive{cancel: cancel, ready: make(chan struct{}), ttls: make(chan int64)}
	go func() {
		defer close(s.ttls)
		stream, err := clientv3.RetryLeaseClient(client).LeaseKeepAlive(ctx)
		s.stream = stream
		close(s.ready)
		for err == nil {
			var resp *pb.LeaseKeepAliveResponse
			if resp, err = stream.Recv(); err == nil {
				select {
				case s.ttls <- resp.TTL:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return s
}

var errNoAnswer = errors.New("etcd did not answer the renewal in time")

// renew sends a renewal of id and returns the TTL etcd answered with.
func (s *keepAlive) renew(id clientv3.LeaseID, deadline time.Time) (time.Duration, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-s.ready:
	case <-timer.C:
		return 0, errNoAnswer
	}
	if s.stream == nil {
		return 0, errNoAnswer
	}
	if err := s.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
		return 0, err
	}
	select {
	case ttl, ok := <-s.ttls:
		if !ok {
			return 0, errNoAnswer
		}
		return time.Duration(ttl) * time.Second, nil
	case <-timer.C:
		return 0, errNoAnswer
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *keepAlive) close() {
	if s != nil {
		s.cancel()
	}
}
