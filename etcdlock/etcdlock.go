// Package etcdlock provides locks kept in etcd, with the shape of package
// lockfile's: [New] tries once, [Acquire] waits until the lock is free or a
// context ends, a refused attempt returns a [*lockfile.LockError] naming the
// holder, for which errors.Is(err, lockfile.ErrLocked) holds, and
// [Lock.Close] releases the lock. The errors are lockfile's on purpose,
// with the key as LockError.Path, and a Lock has a file lock's Lost and
// Close: code that holds either kind of lock is written once.
//
// The lock is that of etcd's concurrency.Mutex, with the same keys, so the
// two exclude each other: every contender puts a key under key+"/" on a
// lease of its own, the key created first holds the lock, and the others
// take it in the order their keys were created.
//
// A Lock's lease is its own while it holds the lock or waits for it. When
// the Lock is closed, its client keeps the lease, renewed, for its next
// Lock with the same TTL, as a concurrency.Session keeps its lease: so a
// lock costs no grant and no revocation. A lease is shared by Locks one
// after another, never at once, so [Lock.Lost] and [Lock.Deadline] concern
// their own Lock alone. A kept lease holds no key; once the client is
// closed, it expires after its TTL.
//
// # Failure model
//
// The lock lives on a lease of the TTL that [WithTTL] sets, which the
// holder renews every third of the TTL. If the holder dies, or cannot
// reach a majority of the cluster, the lock goes to the next waiter once
// the TTL has passed since the last renewal. So a holder can lose the lock
// while it runs: a partition or a pause longer than the TTL, a revoked
// lease or a deleted key. [Lock.Lost] closes then, by the holder's own
// clock no later than etcd can let the lease expire, and the lease is
// revoked. But a process can be paused, or slowed, between its look at
// Lost and its write, and learn of the loss only after the write: fencing
// is required, not optional. A resource that must never take a write from
// a former holder checks [Lock.Token], or within etcd [Lock.IsOwner].
package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/internal/template"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultTTL is the lease TTL used without [WithTTL]: well above the time
// etcd takes to elect a new leader, about a second with its default
// settings, so that an election does not cost a healthy holder its lock.
const DefaultTTL = 10 * time.Second

// ErrLost reports that a lock was lost while it was held: its lease ended
// or its key was deleted.
var ErrLost = errors.New("lock lost while held")

// An Option changes how a lock is taken. Options are applied in order; a
// later option of the same kind replaces an earlier one.
type Option func(*config)

type config struct {
	template, content string
	ttl               time.Duration
	ttlErr            error
}

// WithContentTemplate sets the value of the holder's key, which a refused
// contender sees as [lockfile.LockError.Holder]. It is the template of
// [lockfile.WithContentTemplate], "{pid}" by default; "{pid};{hostname}"
// tells hosts apart. A template that package lockfile refuses makes New and
// Acquire return its [*lockfile.OptionError].
func WithContentTemplate(t string) Option {
	return func(c *config) { c.template = t }
}

// WithTTL sets the TTL of the lock's lease, [DefaultTTL] by default: how
// long after its holder dies or loses touch with the cluster the lock is
// released, and how often the lease is renewed: three times per TTL.
// etcd counts whole seconds, so any other TTL makes New and Acquire
// return a [*lockfile.OptionError]. etcd raises a TTL below its
// minimum (2s with its default settings) to that minimum.
func WithTTL(d time.Duration) Option {
	return func(c *config) {
		c.ttl, c.ttlErr = d, nil
		if d < time.Second || d%time.Second != 0 {
			c.ttlErr = &lockfile.OptionError{Option: "WithTTL", Value: d.String(),
				Reason: "etcd lease TTLs are whole seconds, at least one"}
		}
	}
}

// Lock is a lock held in etcd. Its methods are safe for concurrent use.
// A Lock that is dropped without Close stays held while its client is open.
type Lock struct {
	key, myKey, content string
	token               int64
	lease               *lease

	lost      chan struct{}
	stopWatch context.CancelFunc

	mu       sync.Mutex
	lostErr  error     // why the lock was lost; set by lose before lost closes
	lostAt   time.Time // when lost closed
	released bool      // Close was called
}

// New takes the lock named key if it is free. If it is held, the error is
// a [*lockfile.LockError] with Path set to key and Holder to the holder's
// content, for which errors.Is(err, lockfile.ErrLocked) holds.
//
// The lock's keys are those under key+"/": nothing else may be stored
// there, and no lock's name may be another's followed by "/" ("/locks/a"
// and "/locks/a-b", not "/locks/a" and "/locks/a/b"). Every Lock has a lease
// of its own, so two Locks in one process exclude each other. ctx bounds
// the calls to etcd that take the lock, which wait for a connection while
// etcd cannot be reached; the lock does not depend on it.
func New(ctx context.Context, client *clientv3.Client, key string, opts ...Option) (*Lock, error) {
	c, err := configure(key, opts)
	if err != nil {
		return nil, err
	}
	l, err := tryNew(ctx, client, key, c.content, c.ttl)
	if err != nil {
		return nil, failed(ctx, key, err)
	}
	return l, nil
}

// Acquire takes the lock as [New] does, but if it is held, it waits until
// it is free, in the order of arrival, or until ctx is done. If ctx ends
// while the lock is held, the error is a [*lockfile.LockError] naming the
// holder, for which errors.Is(err, lockfile.ErrLocked) and errors.Is(err,
// ctx.Err()) hold; Acquire returns within a second of ctx's end even if
// etcd does not answer, with another error wrapping ctx.Err() if it could
// not learn the holder. Failures that pass, such as a leader election,
// make it start over.
func Acquire(ctx context.Context, client *clientv3.Client, key string, opts ...Option) (*Lock, error) {
	c, err := configure(key, opts)
	if err != nil {
		return nil, err
	}
	for {
		a, err := begin(ctx, client, key, c.content, c.ttl)
		if err == nil {
			var l *Lock
			if l, err = a.queue(ctx); err == nil {
				return l, nil
			}
		} else if ctxErr := doneErr(ctx); ctxErr != nil {
			// No key was put: ask who holds the lock.
			if holder, held := holderAtEnd(ctx, client, key); held {
				return nil, stoppedWaiting(key, holder, ctxErr)
			}
		}
		if doneErr(ctx) != nil || !errors.Is(err, errRetry) && !passing(err) {
			return nil, failed(ctx, key, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryPause):
		}
	}
}

// configure applies opts and checks them and key.
func configure(key string, opts []Option) (*config, error) {
	c := &config{template: "{pid}", ttl: DefaultTTL}
	for _, opt := range opts {
		opt(c)
	}
	if c.ttlErr != nil {
		return nil, c.ttlErr
	}
	if key == "" {
		return nil, errors.New("etcdlock: empty lock key")
	}
	content, err := template.Expand(c.template)
	var refused *template.Error
	if errors.As(err, &refused) {
		return nil, &lockfile.OptionError{Option: "WithContentTemplate", Value: strconv.Quote(c.template), Reason: refused.Reason}
	}
	c.content = content
	return c, err
}

// failed is the error of New or Acquire that failed with err: a
// [*lockfile.LockError] as it is, another error named with the lock and,
// if ctx has ended, wrapping ctx's error too.
func failed(ctx context.Context, key string, err error) error {
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) {
		return err
	}
	if ctxErr := doneErr(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
		// etcd reports a deadline it was sent as an error of its own.
		err = fmt.Errorf("%w; last failure: %w", ctxErr, err)
	}
	return fmt.Errorf("etcdlock: lock %s: %w", key, err)
}

// retryPause is how long Acquire pauses before it starts over after a
// passing failure: long enough not to flood a cluster that is electing a
// leader, short against the election itself.
const retryPause = 100 * time.Millisecond

// Key returns the lock's key as it was given.
func (l *Lock) Key() string { return l.key }

// Content returns the expanded content template, the value of the holder's
// key.
func (l *Lock) Content() string { return l.content }

// Token returns the lock's fencing token: the revision at which this
// holder's key was created. Every later holder of the lock has a greater
// one, so a resource that refuses tokens lower than the greatest it has
// seen turns away a holder that lost the lock without knowing it yet.
func (l *Lock) Token() int64 { return l.token }

// IsOwner returns a comparison that holds in an etcd transaction while this
// holder's key stands, to make writes within etcd only while the lock is
// held: client.Txn(ctx).If(l.IsOwner()).Then(...).
func (l *Lock) IsOwner() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.myKey), "=", l.token)
}

// Lost returns a channel that is closed when the Lock no longer holds the
// lock: at Close, or when the lock is lost. It is lost when its key is
// deleted or its lease ends: revoked, or not renewed within the TTL, which
// this process counts from the sending of the last renewal etcd answered.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Deadline returns the time, by this process's clock, before which etcd
// cannot let the lock's lease expire: the sending of the last renewal etcd
// answered, plus the TTL. It moves later with each renewal, and once Lost
// is closed, it is no later than that moment. The lock can be lost before
// it, when its key is deleted or its lease revoked. The time holds while
// this host's clock and etcd's run at the same rate.
func (l *Lock) Deadline() time.Time {
	d := l.lease.deadline()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lostAt.IsZero() && l.lostAt.Before(d) {
		return l.lostAt
	}
	return d
}

// closeLost closes lost; l.mu is held.
func (l *Lock) closeLost() {
	l.lostAt = time.Now()
	close(l.lost)
}

// Close releases the lock: it deletes the key and keeps the lease for the
// client's next lock. If etcd does not answer, it revokes the lease,
// trying again while etcd fails until the lease has expired by itself,
// and then returns the error. If the lock had been lost, Close waits,
// as long at most, until the lease is revoked, and returns an error
// wrapping [ErrLost]. Closing a closed Lock returns nil.
func (l *Lock) Close() error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true // no loss is recorded after this
	err := l.lostErr
	if err == nil {
		l.closeLost()
	}
	l.mu.Unlock()
	l.stopWatch()
	if err == nil {
		err = l.release()
	} else {
		<-l.lease.finished // begun by the loss
	}
	if err != nil {
		return fmt.Errorf("etcdlock: release %s: %w", l.key, err)
	}
	return nil
}

// release deletes the key of a lock that was not lost and keeps its lease
// for the client's next lock; if etcd does not answer in time, it revokes
// the lease instead.
func (l *Lock) release() error {
	if l.lease.ended.Err() != nil {
		<-l.lease.finished
		return errLeaseEnded
	}
	ctx, cancel := context.WithTimeout(l.lease.client.Ctx(), revokeTry)
	resp, err := l.lease.client.Delete(ctx, l.myKey, clientv3.WithPrevKV())
	cancel()
	if err != nil {
		return l.lease.finish(l.lease.expiry())
	}
	if len(resp.PrevKvs) == 0 || resp.PrevKvs[0].CreateRevision != l.token {
		// Deleted before the watch saw it, perhaps with the lease.
		go l.lease.finish(time.Now().Add(courtesyTimeout))
		return errKeyDeleted
	}
	keep(l.lease)
	return nil
}

// watchDelay is how long a Lock waits before it watches its key. A watch
// from a past revision reports a deletion when etcd catches it up, every
// 100 ms, so the delay costs Lost no more than that; and a lock released
// sooner costs no watch.
const watchDelay = 100 * time.Millisecond

var (
	errLeaseEnded = fmt.Errorf("%w: its lease ended", ErrLost)
	errKeyDeleted = fmt.Errorf("%w: its key was deleted", ErrLost)
)

// watch starts watching the key once the lock has been held for
// watchDelay, and ends on the lease's end, which closes lost.
func (l *Lock) watch() {
	// Only Close cancels the watch: a watch ended by the client's closing
	// is the loss it is.
	ctx, stop := context.WithCancel(context.Background())
	// A lock released within watchDelay opens no watch: Close reports a
	// deletion of the key as a loss all the same.
	timer := time.AfterFunc(watchDelay, func() { l.watchKey(ctx) })
	leaseEnded := context.AfterFunc(l.lease.ended, func() { l.lose(errLeaseEnded) })
	l.stopWatch = func() {
		stop()
		timer.Stop()
		leaseEnded()
	}
}

// lose records the loss of the lock for reason, unless Close was called,
// and revokes the lease.
func (l *Lock) lose(reason error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.released && l.lostErr == nil {
		l.lostErr = reason
		l.closeLost()
		go l.lease.finish(time.Now().Add(courtesyTimeout)) // no-op if it ended
	}
}

// watchKey closes lost when the key is deleted, until ctx is cancelled by
// Close or the lease ends.
func (l *Lock) watchKey(ctx context.Context) {
	// On a closed client, calls would never return: end them with the
	// lease.
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.lease.ended, cancel)()
	rev := l.token + 1 // catches a deletion before the watch started
	for callCtx.Err() == nil {
		reason := l.watchFrom(callCtx, &rev)
		if reason == nil && callCtx.Err() == nil {
			// The watch ended without news (its revision compacted, or
			// its member gone): look at the key, and watch from there.
			reason = l.check(callCtx, &rev)
		}
		if reason != nil && ctx.Err() == nil {
			l.lose(reason)
			return
		}
	}
}

// watchFrom watches the key from *rev, which it advances, and returns
// errKeyDeleted or, if the watch ended first, nil.
func (l *Lock) watchFrom(ctx context.Context, rev *int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range l.lease.client.Watch(ctx, l.myKey, clientv3.WithRev(*rev), clientv3.WithFilterPut()) {
		if resp.Err() != nil {
			return nil
		}
		if len(resp.Events) > 0 {
			return errKeyDeleted
		}
		*rev = resp.Header.Revision + 1
	}
	return nil
}

// check reads the key until etcd answers or ctx ends, and returns
// errKeyDeleted or nil with *rev set to watch from.
func (l *Lock) check(ctx context.Context, rev *int64) error {
	for {
		resp, err := l.lease.client.Get(ctx, l.myKey)
		if err == nil {
			if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.token {
				return errKeyDeleted
			}
			*rev = resp.Header.Revision + 1
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// holderOf names the holder by the first of a lock's keys, by the rules of
// the file lock: the first line of its content, trimmed.
func holderOf(kvs []*mvccpb.KeyValue) string {
	if len(kvs) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(string(kvs[0].Value), "\n")
	return strings.TrimSpace(first)
}
