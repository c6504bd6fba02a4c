package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golockfile/lockfile"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// An attempt is a contender: its lease, and its key under the lock's
// prefix, named as concurrency.Mutex names its own (the prefix and the
// lease ID in hex), with its content as the value.
type attempt struct {
	client        *clientv3.Client
	key, myKey    string
	content       string
	lease         *lease
	token         int64  // the create revision of myKey
	holderWhenPut string // the holder at token
}

// errRetry makes Acquire start over with a new attempt.
var errRetry = errors.New("the attempt ended before it held the lock")

var (
	errWaiterLeaseEnded = fmt.Errorf("%w: the waiter's lease ended", errRetry)
	errWaiterKeyDeleted = fmt.Errorf("%w: the waiter's key was deleted", errRetry)
	errWatchEnded       = fmt.Errorf("%w: the watch ended", errRetry)
)

// begin starts an attempt on the lease the client keeps, or a new one.
func begin(ctx context.Context, client *clientv3.Client, key, content string, ttl time.Duration) (*attempt, error) {
	l, err := obtain(ctx, client, ttl)
	if err != nil {
		return nil, fmt.Errorf("granting a lease: %w", err)
	}
	return newAttempt(client, key, content, l), nil
}

func newAttempt(client *clientv3.Client, key, content string, l *lease) *attempt {
	myKey := fmt.Sprintf("%s/%x", key, l.id)
	return &attempt{client: client, key: key, myKey: myKey, content: content, lease: l}
}

// tryNew is New's attempt. On the lease the client keeps, it puts the
// contender's key only if no key is under the prefix; without one, it
// reads first whether the lock is held. So a refused New writes, grants
// and revokes nothing.
func tryNew(ctx context.Context, client *clientv3.Client, key, content string,
	ttl time.Duration) (*Lock, error) {
	if l := takeKept(client, ttl); l != nil {
		lock, err := newAttempt(client, key, content, l).try(ctx)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The kept lease was revoked behind the client's back.
			return tryNew(ctx, client, key, content, ttl)
		}
		return lock, err
	}
	resp, err := client.Get(ctx, key+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, fmt.Errorf("reading the lock: %w", err)
	}
	if len(resp.Kvs) > 0 {
		holder := holderOf(resp.Kvs)
		return nil, &lockfile.LockError{Path: key, Holder: holder, Err: lockfile.ErrLocked}
	}
	l, err := obtain(ctx, client, ttl)
	if err != nil {
		return nil, fmt.Errorf("granting a lease: %w", err)
	}
	return newAttempt(client, key, content, l).try(ctx)
}

// try puts the contender's key only if no key is under the prefix; if one
// is, the lease is kept for the client's next lock.
func (a *attempt) try(ctx context.Context) (*Lock, error) {
	resp, err := a.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(a.key+"/"), "=", 0).WithPrefix()).
		Then(clientv3.OpPut(a.myKey, a.content, clientv3.WithLease(a.lease.id))).
		Else(clientv3.OpGet(a.key+"/", clientv3.WithFirstCreate()...)).
		Commit()
	switch {
	case err != nil:
		a.abandon(ctx) // the put may have been made
		return nil, fmt.Errorf("putting the lock key: %w", err)
	case !resp.Succeeded:
		keep(a.lease)
		return nil, &lockfile.LockError{Path: a.key, Holder: holderOf(resp.Responses[0].GetResponseRange().Kvs), Err: lockfile.ErrLocked}
	}
	a.token = resp.Header.Revision
	return a.held(), nil
}

// queue is Acquire's attempt: it puts the contender's key, and reads the
// first key under the prefix in the same transaction; unless that is its
// own, it waits.
func (a *attempt) queue(ctx context.Context) (*Lock, error) {
	resp, err := a.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(a.myKey), "=", 0)).
		Then(clientv3.OpPut(a.myKey, a.content, clientv3.WithLease(a.lease.id)),
			clientv3.OpGet(a.key+"/", clientv3.WithFirstCreate()...)).
		Commit()
	if err == nil && !resp.Succeeded {
		err = fmt.Errorf("key %s exists already", a.myKey) // a fresh lease's cannot
	}
	if err != nil {
		// The key may have been put: it goes, and if ctx has ended,
		// the error names the holder as when ctx ends in the wait.
		holder, held := a.abandon(ctx)
		if ctxErr := doneErr(ctx); ctxErr != nil && held {
			return nil, stoppedWaiting(a.key, holder, ctxErr)
		}
		return nil, fmt.Errorf("putting the lock key: %w", err)
	}
	a.token = resp.Header.Revision
	kvs := resp.Responses[1].GetResponseRange().Kvs
	a.holderWhenPut = holderOf(kvs)
	if kvs[0].CreateRevision == a.token {
		return a.held(), nil
	}
	if err := a.wait(ctx); err != nil {
		holder, held := a.abandon(ctx)
		if ctxErr := doneErr(ctx); ctxErr != nil {
			if !held {
				holder = a.holderWhenPut // etcd did not answer in time
			}
			return nil, stoppedWaiting(a.key, holder, ctxErr)
		}
		return nil, err
	}
	return a.held(), nil
}

// stoppedWaiting is Acquire's error when ctx ended with err while holder
// held the lock.
func stoppedWaiting(key, holder string, err error) error {
	return &lockfile.LockError{Path: key, Holder: holder,
		Err: fmt.Errorf("%w; stopped waiting: %w", lockfile.ErrLocked, err)}
}

// wait waits until no key created before the contender's is left under
// the prefix, watching the last of them, as concurrency.Mutex does.
func (a *attempt) wait(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.lease.ended, cancel)()
	before := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(a.token-1))
	for {
		resp, err := a.client.Txn(ctx).Then(clientv3.OpGet(a.myKey), clientv3.OpGet(a.key+"/", before...)).Commit()
		if err != nil {
			return a.waitErr(err)
		}
		if own := resp.Responses[0].GetResponseRange().Kvs; len(own) == 0 || own[0].CreateRevision != a.token {
			return errWaiterKeyDeleted
		}
		prev := resp.Responses[1].GetResponseRange().Kvs
		if len(prev) == 0 {
			return nil
		}
		if err := waitDeleted(ctx, a.client, prev[0], resp.Header.Revision); err != nil {
			return a.waitErr(err)
		}
	}
}

// waitDeleted waits until the key p, seen at revision rev, is deleted. The
// watch starts at etcd's current revision, where etcd counts it as synced
// and sends the deletion as it happens; a watch from a past revision, even
// rev+1 once anything else was written, waits for etcd to catch it up,
// every 100 ms. If the watch started after rev, the key is looked at
// again, for a deletion in between.
func waitDeleted(ctx context.Context, client *clientv3.Client, p *mvccpb.KeyValue, rev int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A member that has lost its leader ends the watch.
	watch := client.Watch(clientv3.WithRequireLeader(ctx), string(p.Key), clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
	for resp := range watch {
		switch {
		case resp.Err() != nil:
			return resp.Err()
		case len(resp.Events) > 0:
			return nil
		case resp.Created && resp.Header.Revision > rev:
			now, err := client.Get(ctx, string(p.Key))
			if err != nil || len(now.Kvs) == 0 || now.Kvs[0].CreateRevision != p.CreateRevision {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errWatchEnded
}

// waitErr is the error of a wait that failed with err.
func (a *attempt) waitErr(err error) error {
	if a.lease.ended.Err() != nil {
		return errWaiterLeaseEnded
	}
	return err
}

// held turns an attempt whose key holds the lock into a Lock.
func (a *attempt) held() *Lock {
	l := &Lock{key: a.key, myKey: a.myKey, content: a.content, token: a.token, lease: a.lease,
		lost: make(chan struct{})}
	l.watch()
	return l
}

// abandon deletes the contender's key, so that the lock does not wait for
// it even if this process exits now, and revokes the lease in the
// background. It returns the holder then, and held if etcd answered in
// time that the lock is held.
func (a *attempt) abandon(ctx context.Context) (holder string, held bool) {
	defer func() { go a.lease.finish(time.Now().Add(courtesyTimeout)) }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), courtesyTimeout)
	defer cancel()
	resp, err := a.client.Txn(ctx).
		Then(clientv3.OpDelete(a.myKey), clientv3.OpGet(a.key+"/", clientv3.WithFirstCreate()...)).
		Commit()
	if err != nil {
		return "", false
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	return holderOf(kvs), len(kvs) > 0
}

// holderAtEnd returns the holder of the lock named key, for an Acquire
// whose context has ended before its key was put, and held if etcd
// answered within courtesyTimeout that the lock is held.
func holderAtEnd(ctx context.Context, client *clientv3.Client, key string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), courtesyTimeout)
	defer cancel()
	resp, err := client.Get(ctx, key+"/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	return holderOf(resp.Kvs), true
}

// doneErr returns ctx's error, or DeadlineExceeded once its deadline has
// passed: etcd's answer that the deadline it was sent has passed can come
// before ctx's own timer has fired.
func doneErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// passing reports whether err is one that etcd gives while a member is out
// of reach or a leader is being elected, which a retry soon gets past.
func passing(err error) bool {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return true
	}
	// A lease not found is the attempt's own, lost in a leader change.
	for _, e := range []error{rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrLeaseNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
