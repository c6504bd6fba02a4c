// Package etcdlock provides the locks of package lockfile kept in etcd
// instead of on a lock file, so that a service running on many hosts can
// exclude its other instances wherever they run.
//
// It has the shape of the file lock: [New] tries once and [Acquire] waits
// until the lock is free or a context ends; a refused attempt returns a
// [*lockfile.LockError] for which errors.Is(err, lockfile.ErrLocked) holds
// and whose Holder is the holder's expanded content template, such as
// "8244;web-1"; [Lock.Close] releases the lock. Code written against the
// file lock's errors works unchanged.
//
// The lock itself is etcd's own: a Mutex of go.etcd.io/etcd/client/v3/concurrency
// on a session whose lease this package grants. Each contender puts a key
// under key+"/" on its lease, with its content as the value; the key created
// first holds the lock, and the others wait, woken by a watch, for the keys
// created before theirs to go. No lock protocol of this package's own is
// involved.
//
// # What a file lock does not need
//
// A file lock is released by the kernel when its holder dies. An etcd lock
// cannot be: etcd only sees a holder stop renewing its lease. So the lock
// lives on a lease of [WithTTL] seconds ([DefaultTTL] unless set), which the
// holder renews in the background about every third of it. If the holder's
// process or host dies, or can no longer reach a majority of the etcd
// cluster, etcd deletes the lock's key once the TTL has passed since the last
// renewal, and the next waiter gets the lock.
//
// For the same reason a holder can lose the lock while it believes it holds
// it: its lease expired during a network partition, a long pause, or
// someone revoked it or deleted its key. [Lock.Lost] tells the holder so it
// can stop its work. The package keeps a clock of its own for the lease:
// the time taken before the last request that etcd answered with a grant or
// a renewal was sent, plus the TTL. etcd handled that request after it was
// sent, so it cannot let the lease expire before then, and Lost closes
// when that time comes unless a newer renewal was answered (see [Lock.Lost]
// for what remains). A stalled process learns nothing until it runs again,
// and work that looks at Lost between its steps learns at its next look. A
// resource that must never take a write from a holder that has lost the
// lock therefore checks [Lock.Token], a number that grows with every new
// holder, and refuses writes carrying a token lower than one it has seen.
//
// # Handoff and versions
//
// When the holder closes the lock, the next waiter holds it a few
// milliseconds later. A waiter that queued less than about 100 ms before the
// release can take up to 100 ms longer: etcd catches up a watch that starts
// at a past revision, as the Mutex's does, every 100 ms.
//
// The package uses only key ranges and transactions, leases (grant,
// keep-alive, revoke) and watches. Each lease is renewed twice per third of
// its TTL: by the Mutex's session, and by the package for its own clock.
// The client it builds on, v3.7, is tested here against etcd 3.4 servers,
// which serve all of those.
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
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultTTL is the lease TTL used without [WithTTL]. A dead holder keeps
// the lock for about this long (etcd looks for expired leases twice a
// second); it is well above the time etcd needs to
// elect a new leader (about a second with etcd's default settings), so a
// leader change does not cost a healthy holder its lock.
const DefaultTTL = 10 * time.Second

// ErrLost reports that a lock was lost while it was held: its lease expired
// or was revoked, or its key was deleted. [Lock.Close] returns an error
// wrapping it for a lock that had been lost, so that a holder learns that
// its work may have overlapped with the next holder's.
var ErrLost = errors.New("etcdlock: lock lost while held")

// An Option changes how a lock is taken. Options are applied in order; a
// later option of the same kind replaces an earlier one.
type Option func(*config)

type config struct {
	template string
	ttl      time.Duration
	err      error // the first invalid option
}

func newConfig(opts []Option) (*config, error) {
	c := &config{template: "{pid}", ttl: DefaultTTL}
	for _, opt := range opts {
		opt(c)
	}
	return c, c.err
}

func (c *config) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// WithContentTemplate sets what a lock stores as the value of its key, for
// contenders to name it in [lockfile.LockError.Holder]. The template is
// expanded exactly as the file lock's [lockfile.WithContentTemplate]: the
// default is "{pid}"; "{pid};{hostname}" tells hosts apart, which a lock
// shared between hosts usually wants. A template the file lock would refuse
// makes New and Acquire return the same [*lockfile.OptionError] before etcd
// is contacted.
func WithContentTemplate(t string) Option {
	return func(c *config) { c.template = t }
}

// WithTTL sets the TTL of the lease the lock lives on: how long after its
// holder dies, or loses touch with the etcd cluster, the lock is released.
// etcd counts lease TTLs in whole seconds, so a TTL below one second or
// with a fraction of a second makes New and Acquire return a
// [*lockfile.OptionError]; rounding would silently give a holder's death
// more or less time than was asked for. etcd raises a TTL below its own
// minimum, one and a half election timeouts rounded up to whole seconds (2s
// with its default settings), to that minimum.
//
// A shorter TTL frees the lock of a dead holder sooner, but makes a healthy
// holder lose it on shorter network trouble; it must stay well above the
// cluster's election timeout.
func WithTTL(d time.Duration) Option {
	return func(c *config) {
		switch {
		case d < time.Second:
			c.fail(&lockfile.OptionError{Option: "WithTTL", Value: d.String(),
				Reason: "an etcd lease lasts at least one second"})
		case d%time.Second != 0:
			c.fail(&lockfile.OptionError{Option: "WithTTL", Value: d.String(),
				Reason: "etcd lease TTLs are whole seconds"})
		default:
			c.ttl = d
		}
	}
}

// Lock is a held lock in etcd. Its methods are safe for concurrent use.
//
// The lock is held until Close, until it is lost (see [Lock.Lost]), or until
// the client is closed; if the process dies, it is released once the lease's
// TTL has passed. Dropping a Lock without closing it keeps the lock held
// for as long as the client is open.
type Lock struct {
	key     string
	myKey   string
	content string
	token   int64
	ttl     time.Duration // as granted by etcd
	client  *clientv3.Client
	session *concurrency.Session
	keeper  *keeper

	lost      chan struct{}
	stopWatch context.CancelFunc
	watchDone chan struct{}

	mu       sync.Mutex
	lostErr  error // why the lock was lost; set only by watch, before lost closes
	released bool  // Close has been called
}

// New takes the lock named key if it is free and returns at once. If
// someone else holds it, the error is a [*lockfile.LockError] with Path set
// to key and Holder to the holder's content, for which errors.Is(err,
// lockfile.ErrLocked) holds.
//
// The keys etcd holds for the lock are those under key+"/"; key itself is
// never written. Every key under key+"/" counts as a contender, so nothing
// else may be stored there, and no lock's name may be another's followed by
// "/": the keys of lock "/jobs/a" are under "/jobs/", so its holder would
// also hold lock "/jobs" and be named as its holder. Give locks names none
// of which is a prefix of another up to a "/", such as "/locks/jobs" and
// "/locks/jobs-a". Every Lock object takes its own lease, so two Locks in
// one process exclude each other, as two file locks do.
//
// ctx bounds the calls to etcd made while taking the lock; the lock, once
// held, does not depend on it. The grant of the lease is the exception: a
// grant cancelled on its way could still be granted, so it is left to finish
// within the TTL, and a lease granted after ctx ended is revoked in the
// background. A refused New looks up the holder for at most a second, less
// if ctx ends sooner, and revokes its lease in the background. Other
// failures wrap the client's error.
func New(ctx context.Context, client *clientv3.Client, key string, opts ...Option) (*Lock, error) {
	return lock(ctx, client, key, opts, false)
}

// Acquire takes the lock as [New] does, but if it is held it waits until the
// holder releases it or loses it, or until ctx is done, whichever comes
// first. Waiters get the lock in the order they started waiting, and each is
// woken by a watch, not by polling.
//
// If ctx ends while Acquire waits, the error is a [*lockfile.LockError]
// naming the holder at that moment, for which both errors.Is(err,
// lockfile.ErrLocked) and errors.Is(err, ctx.Err()) hold. Acquire returns
// then, within a second at most (the time it allows etcd to name the
// holder) even if etcd does not answer; the abandoned wait's lease is
// revoked in the background, for at most a second, which deletes its key.
// The Mutex's own deletion of the key uses the client's context: it waits
// for etcd, in a goroutine, for as long as the client is open. If ctx ends
// before etcd has said whether the lock is held (it was done already, or
// etcd was slow or failing), the error wraps ctx's error but not ErrLocked.
//
// Failures that pass, such as a member out of reach or a leader election,
// make Acquire start over on a new lease until ctx ends, and so does the
// expiry of the waiter's own lease, which happens when etcd is out of reach
// for longer than the TTL. Other failures are returned.
func Acquire(ctx context.Context, client *clientv3.Client, key string, opts ...Option) (*Lock, error) {
	return lock(ctx, client, key, opts, true)
}

func lock(ctx context.Context, client *clientv3.Client, key string, opts []Option, wait bool) (*Lock, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errors.New("etcdlock: empty lock key")
	}
	content, err := lockfile.ExpandTemplate(c.template)
	if err != nil {
		return nil, err
	}
	for {
		var l *Lock
		a, err := start(ctx, client, key, content, c.ttl)
		switch {
		case err == nil && !wait:
			return a.try(ctx)
		case err == nil:
			l, err = a.wait(ctx)
		}
		again := wait && (errors.Is(err, errRetry) || passing(err))
		ctxErr := doneErr(ctx)
		if again && ctxErr != nil {
			return nil, fmt.Errorf("etcdlock: lock %s: %w; last failure: %w", key, ctxErr, err)
		}
		if !again {
			if err != nil && ctxErr != nil && !errors.Is(err, ctxErr) {
				// etcd reports a deadline it was sent as an error of
				// its own.
				err = fmt.Errorf("%w: %w", err, ctxErr)
			}
			return l, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryPause):
		}
	}
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
	if errors.Is(err, errGrantUnanswered) {
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

// errRetry makes Acquire start over with a new attempt; New returns it.
var errRetry = errors.New("etcdlock: the attempt ended before it held the lock")

var (
	errWaiterLeaseEnded = fmt.Errorf("%w: the waiter's lease ended", errRetry)
	// errKeyReplaced: the contender's key was deleted between start's put
	// and the Mutex's look, so the Mutex put an empty key of its own under
	// the same name, later. Its content and token would not be this
	// attempt's.
	errKeyReplaced = fmt.Errorf("%w: its key was deleted and replaced by the Mutex's", errRetry)
	// errGrantUnanswered: etcd did not answer a grant within the TTL.
	// Acquire tries again while its context lasts.
	errGrantUnanswered = errors.New("etcd did not answer within the TTL")
)

// retryPause is how long Acquire pauses before it starts over after a
// passing failure: long enough not to flood a cluster that is electing a
// leader, short against the election itself.
const retryPause = 100 * time.Millisecond

// An attempt is a contender: a lease renewed by a session and by a keeper,
// whose clock alone says whether the lease may have ended, and its key under
// the lock's prefix.
type attempt struct {
	key, myKey, content string
	client              *clientv3.Client
	session             *concurrency.Session
	keeper              *keeper
	mutex               *concurrency.Mutex
	token               int64         // the create revision of myKey
	ttl                 time.Duration // as granted by etcd
	firstHolder         string        // the holder when the attempt started
}

// start grants a lease and puts this contender's key with its content.
// The key is put before the Mutex sees it, under the very name the Mutex
// gives its own key (the prefix and the lease ID in hex), so the Mutex adopts
// it instead of creating an empty one: a contender can then always read the
// holder's content, even the instant after a handoff.
func start(ctx context.Context, client *clientv3.Client, key, content string, ttl time.Duration) (*attempt, error) {
	fail := func(what string, err error) error {
		return fmt.Errorf("etcdlock: lock %s: %s: %w", key, what, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fail("granting a lease", err)
	}
	// etcd starts the lease's TTL when it grants it, which is after this.
	begun := time.Now()
	grant, err := grantLease(ctx, client, ttl)
	if err != nil {
		return nil, fail("granting a lease", err)
	}
	granted := time.Duration(grant.TTL) * time.Second
	session, err := concurrency.NewSession(client, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(grant.TTL)))
	if err != nil {
		go revoke(client, grant.ID)
		return nil, fail("keeping the lease alive", err)
	}
	a := &attempt{key: key, content: content, client: client, session: session,
		keeper: newKeeper(client, grant.ID, begun, granted),
		ttl:    granted,
		myKey:  key + "/" + strconv.FormatInt(int64(grant.ID), 16)}
	resp, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(a.myKey), "=", 0)).
		Then(clientv3.OpPut(a.myKey, content, clientv3.WithLease(grant.ID)),
			clientv3.OpGet(key+"/", clientv3.WithFirstCreate()...)).
		Commit()
	if err != nil {
		a.abandon()
		return nil, fail("putting the lock key", err)
	}
	if !resp.Succeeded { // a fresh lease's key cannot exist
		a.abandon()
		return nil, fail("putting the lock key", fmt.Errorf("key %s exists already", a.myKey))
	}
	a.token = resp.Header.Revision
	a.firstHolder = holderOf(resp.Responses[1].GetResponseRange().Kvs)
	a.mutex = concurrency.NewMutex(session, key)
	if testHookStarted != nil {
		testHookStarted(a.myKey)
	}
	return a, nil
}

// testHookStarted, if set by a test, runs when an attempt has put its key
// and before the Mutex looks at it.
var testHookStarted func(myKey string)

// grantLease grants a lease of ttl. A grant cancelled in flight may still
// be granted, and a lease whose ID is never learned cannot be revoked: so
// the grant is not cancelled with ctx, only bounded by the TTL, and a lease
// granted after ctx ended is revoked in the background.
func grantLease(ctx context.Context, client *clientv3.Client, ttl time.Duration) (*clientv3.LeaseGrantResponse, error) {
	type result struct {
		resp *clientv3.LeaseGrantResponse
		err  error
	}
	done := make(chan result, 1)
	grantCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
	go func() {
		defer cancel()
		resp, err := client.Grant(grantCtx, int64(ttl/time.Second))
		if err != nil && grantCtx.Err() != nil && client.Ctx().Err() == nil {
			err = fmt.Errorf("%w: %w", errGrantUnanswered, err)
		}
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				revoke(client, r.resp.ID)
			}
		}()
		return nil, ctx.Err()
	}
}

// try is New's single attempt.
func (a *attempt) try(ctx context.Context) (*Lock, error) {
	err := a.mutex.TryLock(ctx)
	if errors.Is(err, concurrency.ErrLocked) {
		a.abandon()
		return nil, &lockfile.LockError{Path: a.key, Holder: a.holder(ctx), Err: lockfile.ErrLocked}
	}
	if err != nil {
		a.abandon()
		return nil, fmt.Errorf("etcdlock: lock %s: %w", a.key, err)
	}
	return a.held()
}

// wait is Acquire's wait. The Mutex waits in a goroutine of its own, so that
// the caller is free the moment ctx ends. The Mutex then deletes its key
// with the client's context, a call that waits for etcd for as long as the
// client is open; the goroutine ends with it. The lease is revoked meanwhile
// in the background, which deletes the key as well.
func (a *attempt) wait(ctx context.Context) (*Lock, error) {
	// The wait also ends when this contender's lease does: a waiter whose
	// key is gone would otherwise wait for its predecessors only to find
	// that out.
	waitCtx, cancel := context.WithCancel(ctx)
	stopSession := context.AfterFunc(a.session.Ctx(), cancel)
	stopKeeper := context.AfterFunc(a.keeper.ended, cancel)
	result := make(chan error, 1)
	go func() {
		result <- a.mutex.Lock(waitCtx)
		stopSession()
		stopKeeper()
		cancel()
	}()
	select {
	case err := <-result:
		switch {
		case err == nil:
			return a.held()
		case doneErr(ctx) != nil:
			a.abandon()
			return nil, a.gaveUp(ctx)
		case a.session.Ctx().Err() != nil || a.keeper.ended.Err() != nil || errors.Is(err, concurrency.ErrSessionExpired):
			a.abandon()
			return nil, errWaiterLeaseEnded
		}
		a.abandon()
		return nil, fmt.Errorf("etcdlock: lock %s: %w", a.key, err)
	case <-ctx.Done():
		a.abandon()
		return nil, a.gaveUp(ctx)
	}
}

// gaveUp is the error of a wait that ctx ended. ctx is done, so the holder
// is looked up without it.
func (a *attempt) gaveUp(ctx context.Context) error {
	return &lockfile.LockError{Path: a.key, Holder: a.holder(context.WithoutCancel(ctx)),
		Err: fmt.Errorf("%w; stopped waiting: %w", lockfile.ErrLocked, doneErr(ctx))}
}

// holder names the holder now, or if etcd does not answer in time or ctx
// ends first, the one found when the attempt started.
func (a *attempt) holder(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, holderTimeout)
	defer cancel()
	resp, err := a.client.Get(ctx, a.key+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return a.firstHolder
	}
	return holderOf(resp.Kvs)
}

// holderOf names the holder in the first key of a lock's prefix, by the
// rules of the file lock: the first line of its content, trimmed.
func holderOf(kvs []*mvccpb.KeyValue) string {
	if len(kvs) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(string(kvs[0].Value), "\n")
	return strings.TrimSpace(first)
}

// abandon ends the keep-alive and revokes the lease in the background,
// which deletes the contender's key, so that the caller does not wait for
// it. If etcd does not answer in time, the lease expires by itself.
func (a *attempt) abandon() {
	a.keeper.stop()
	a.session.Orphan()
	go revoke(a.client, a.session.Lease())
}

func revoke(client *clientv3.Client, id clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(client.Ctx(), holderTimeout)
	defer cancel()
	_, err := client.Revoke(ctx, id)
	return err
}

// held turns a successful attempt into a Lock.
func (a *attempt) held() (*Lock, error) {
	// The Mutex holds the lock with the key of the name and revision
	// IsOwner compares; unless that is the key start put, the content
	// and the token would belong to another key.
	if own := a.mutex.IsOwner(); a.mutex.Key() != a.myKey || own.GetCompare().GetCreateRevision() != a.token {
		a.abandon()
		return nil, fmt.Errorf("etcdlock: lock %s: %w", a.key, errKeyReplaced)
	}
	// Only Close cancels the watch's context: a watch ended by the client's
	// closing must be seen as the loss it is.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	l := &Lock{key: a.key, myKey: a.myKey, content: a.content, token: a.token,
		ttl: a.ttl, client: a.client, session: a.session, keeper: a.keeper,
		lost: make(chan struct{}), stopWatch: stopWatch, watchDone: make(chan struct{})}
	go l.watch(watchCtx)
	return l, nil
}

// Key returns the lock's key as it was given.
func (l *Lock) Key() string { return l.key }

// Content returns the expanded content template stored as the value of this
// holder's key: what a refused contender sees as the holder.
func (l *Lock) Content() string { return l.content }

// Token returns this holder's fencing token: the etcd revision at which its
// key was created. The lock goes to contenders in the order their keys were
// created, so every later holder of the lock has a greater token, whatever
// client or host it runs on. A resource guarded by the lock can store the
// greatest token it has seen and refuse writes carrying a lower one; that
// turns away a holder that lost the lock without noticing yet (see
// [Lock.Lost]). Tokens of different keys are not related.
func (l *Lock) Token() int64 { return l.token }

// Lost returns a channel that is closed once this Lock no longer holds the
// lock: when it is lost, or at the latest by Close, so that goroutines
// waiting on it end either way. The lock is lost when its lease ends (it
// expired because the holder could not renew it within the TTL, or it was
// revoked) or when its key is deleted. A holder that did not close the lock
// itself stops its work under the lock when Lost is closed; [Lock.Close]
// then returns an error wrapping [ErrLost].
//
// A lease that runs out while etcd is out of reach is noticed by the
// holder's own clock: Lost closes at the time taken before the last
// answered grant or renewal was sent, plus the TTL. etcd handled that
// request after it was sent and starts the TTL again then, and a new leader
// only extends leases, so etcd deletes the key no sooner, by its leader's
// clock. What remains: the two clocks must run at the same rate (a rate
// differing by r makes Lost up to r times the TTL late); Lost closes when
// the runtime runs its timer, which is late by the process's scheduling
// delay, and not at all while the process is stopped or paused; and work
// learns of it only when it looks. Use [Lock.Token] where that matters.
//
// The reverse can happen: Lost can close while etcd keeps the lease, when
// renewals were answered too late for the clock. Close then revokes the
// lease, so the lock is not left held. A revoked lease or a deleted key is
// seen within a third of the TTL (the next renewal) or at once (the watch on
// the key), whichever comes first.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Close releases the lock by revoking its lease, which deletes its key, so
// the next waiter gets the lock at once. Closing a closed lock does nothing
// and returns nil.
//
// If the lock had been lost, Close returns an error wrapping [ErrLost], at
// once when the loss was the end of the lease, after it asked etcd in the
// background (for at most a second) to revoke the lease in case etcd still
// keeps it; so it does when etcd finds the lease gone although Lost had not
// been closed yet. Otherwise Close
// stops renewing the lease and asks etcd to revoke it, again while etcd
// fails (as during a leader election), for at most the TTL. If etcd never
// answers, Close returns the error, and the lease expires by itself: one
// TTL after its last renewal, a little later if a new leader was elected
// in between, since a new leader grants every lease a fresh TTL.
func (l *Lock) Close() error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	l.mu.Unlock()
	l.stopWatch()
	<-l.watchDone // no loss is recorded after this
	lostErr := l.lostErr
	if lostErr == nil {
		close(l.lost)
	}
	ended := l.keeper.ended.Err() != nil
	l.keeper.stop()
	l.session.Orphan()
	if ended {
		// By this process's clock the lease has expired, or etcd said it
		// is gone, or the client was closed. The clock runs out before
		// etcd's, so etcd may still keep the lease a little longer, and
		// longer if a new leader has extended it: revoke it once, in the
		// background, for Close to return at once.
		if lostErr == nil {
			lostErr = errLeaseEnded
		}
		if l.client.Ctx().Err() == nil {
			go revoke(l.client, l.session.Lease())
		}
		return fmt.Errorf("etcdlock: release %s: %w", l.key, lostErr)
	}
	err := l.revoke()
	if lostErr != nil {
		return fmt.Errorf("etcdlock: release %s: %w", l.key, lostErr)
	}
	if err != nil {
		return fmt.Errorf("etcdlock: release %s: %w", l.key, err)
	}
	return nil
}

// revoke revokes the lock's lease, trying again while etcd fails, for at
// most the TTL: by then the lease, no longer renewed, has expired. A try
// lost in a leader election would otherwise use up the whole TTL.
func (l *Lock) revoke() error {
	deadline := time.Now().Add(l.ttl)
	for n := 0; ; n++ {
		try := time.Now().Add(revokeTry)
		if try.After(deadline) {
			try = deadline
		}
		ctx, cancel := context.WithDeadline(l.client.Ctx(), try)
		_, err := l.client.Revoke(ctx, l.session.Lease())
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, rpctypes.ErrLeaseNotFound) && n == 0:
			// Gone before Close: a loss that the watch had not
			// reported yet.
			return errLeaseEnded
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return nil // an earlier try that failed on the way back
		}
		if l.client.Ctx().Err() != nil || !time.Now().Before(deadline) {
			return err
		}
	}
}

// revokeTry bounds one try of Close's revocation, and holderTimeout the
// look-up of the holder when a wait has ended and the revocation of a
// failed attempt's lease: courtesies that must not keep a caller waiting on
// an unresponsive cluster. An unrevoked lease expires by itself after its
// TTL, as its keep-alive has stopped.
const (
	revokeTry     = time.Second
	holderTimeout = time.Second
)

var (
	errLeaseEnded = fmt.Errorf("%w: its lease ended (expired, revoked, or not renewed within its TTL)", ErrLost)
	errKeyDeleted = fmt.Errorf("%w: its key was deleted", ErrLost)
)

// watch closes lost when the lease ends or the key is deleted, until ctx
// is cancelled by Close.
func (l *Lock) watch(ctx context.Context) {
	defer close(l.watchDone)
	// The calls to etcd end when the lease does: on a closed client they
	// would otherwise never return.
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.keeper.ended, cancel)()
	// Watching from the revision after the key's creation catches a
	// deletion that came before the watch started.
	rev := l.token + 1
	for {
		reason := l.watchFrom(callCtx, &rev)
		if reason == nil && callCtx.Err() == nil {
			// The watch ended without news: its revision was compacted
			// away, or the member serving it went down. Look at the
			// key itself, and watch again from there.
			reason = l.check(callCtx, &rev)
		}
		if ctx.Err() != nil {
			return
		}
		if reason == nil && l.keeper.ended.Err() != nil {
			reason = errLeaseEnded
		}
		if reason != nil {
			l.mu.Lock()
			if !l.released {
				l.lostErr = reason
				close(l.lost)
			}
			l.mu.Unlock()
			return
		}
	}
}

// watchFrom watches the key from *rev, which it advances, and returns why
// the lock was lost, or nil if the watch ended first.
func (l *Lock) watchFrom(ctx context.Context, rev *int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := l.client.Watch(ctx, l.myKey, clientv3.WithRev(*rev))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.keeper.ended.Done():
			return errLeaseEnded
		case resp, ok := <-events:
			if !ok || resp.Err() != nil {
				return nil
			}
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.DELETE {
					return errKeyDeleted
				}
			}
			*rev = resp.Header.Revision + 1
		}
	}
}

// check reads the key, retrying until etcd answers, and returns why the lock
// was lost, or nil with *rev set to watch from.
func (l *Lock) check(ctx context.Context, rev *int64) error {
	for {
		resp, err := l.client.Get(ctx, l.myKey)
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
		case <-l.keeper.ended.Done():
			return errLeaseEnded
		case <-time.After(100 * time.Millisecond):
		}
	}
}
