package etcdlock

import (
	"context"
	"errors"
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
	ttl    time.Duration // as granted

	// ended is done once the lease has ended or may have: its time ran
	// out, etcd said it is gone, or the client was closed.
	ended context.Context
	end   context.CancelFunc
	stop  context.CancelFunc // stops the renewals
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
	l := &lease{client: client, id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second}
	l.ended, l.end = context.WithCancel(context.Background())
	renewCtx, stop := context.WithCancel(client.Ctx())
	l.stop = stop
	go l.renew(renewCtx, sent.Add(l.ttl))
	return l, nil
}

// renew renews the lease a third of the TTL after each answered renewal,
// leaving two more tries before it could expire, until ctx ends or the
// lease does. until is the time before which etcd cannot let it expire.
func (l *lease) renew(ctx context.Context, until time.Time) {
	var s *keepAlive
	defer func() { s.close() }()
	timer := time.NewTimer(time.Until(until.Add(-l.ttl * 2 / 3)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if l.client.Ctx().Err() != nil {
				l.end() // no one can renew it any more
			}
			return
		case <-l.ended.Done():
			return
		case <-timer.C:
		}
		sent := time.Now()
		if !sent.Before(until) {
			l.end()
			return
		}
		if s == nil {
			s = openKeepAlive(ctx, l.client)
		}
		// A try stuck on a connection that died quietly would use up all
		// the time left, while a try on a new stream may pass.
		ttl, err := s.renew(l.id, earlier(sent.Add(l.ttl/3), until))
		switch {
		case err == nil && ttl > 0:
			until = sent.Add(ttl)
			timer.Reset(time.Until(until.Add(-l.ttl * 2 / 3)))
		case err == nil: // etcd answers a renewal of a lease it lacks with TTL 0
			l.end()
			return
		default:
			s.close()
			s = nil
			timer.Reset(min(renewRetry, time.Until(until)))
		}
	}
}

// drop stops renewing the lease and revokes it in the background, which
// deletes its key. A lease that etcd does not revoke in time expires by
// itself.
func (l *lease) drop() {
	l.stop()
	if l.client.Ctx().Err() == nil {
		go func() {
			ctx, cancel := context.WithTimeout(l.client.Ctx(), courtesyTimeout)
			defer cancel()
			l.client.Revoke(ctx, l.id)
		}()
	}
}

// release stops renewing the lease and revokes it, trying again while etcd
// fails, as during a leader election, for at most the TTL: by then the
// lease has expired anyway. It returns errLeaseEnded if the lease was gone
// already.
func (l *lease) release() error {
	l.stop()
	deadline := time.Now().Add(l.ttl)
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

// revokeTry bounds one try of release, and courtesyTimeout the calls that
// must not keep a caller waiting on an unresponsive cluster: a background
// revocation, and the deletion of an abandoned attempt's key.
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
