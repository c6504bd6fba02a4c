//go:build unix

package etcdlock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/etcdlock"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// connect returns a client of the etcd cluster named by ETCDCTL_ENDPOINTS,
// the variable etcdctl reads too. The tests set it to the server they start.
func connect() *clientv3.Client {
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(os.Getenv("ETCDCTL_ENDPOINTS"), ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// Start-up code for a service that runs on many hosts but must run once:
// the second instance is refused and told where the first one runs.
func Example() {
	client := connect()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The instance on web-1 starts first.
	running, err := etcdlock.New(ctx, client, "/locks/report-job", etcdlock.WithContentTemplate("4242;web-1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("web-1 runs the job")

	// Another instance, which would write "{pid};{hostname}", is refused.
	_, err = etcdlock.New(ctx, client, "/locks/report-job", etcdlock.WithContentTemplate("{pid};{hostname}"))
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) {
		fmt.Printf("refused: held by %s (ErrLocked: %v)\n", lockErr.Holder, errors.Is(err, lockfile.ErrLocked))
	}

	if err := running.Close(); err != nil {
		log.Fatal(err)
	}
	again, err := etcdlock.New(ctx, client, "/locks/report-job")
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close()
	fmt.Println("free again after Close")
	// Output:
	// web-1 runs the job
	// refused: held by 4242;web-1 (ErrLocked: true)
	// free again after Close
}

// Waiting for the lock, for at most a while.
func ExampleAcquire() {
	client := connect()
	defer client.Close()
	holder, err := etcdlock.New(context.Background(), client, "/locks/migrate", etcdlock.WithContentTemplate("migration on db-2"))
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = etcdlock.Acquire(ctx, client, "/locks/migrate")
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) && errors.Is(err, context.DeadlineExceeded) {
		fmt.Println("gave up waiting for:", lockErr.Holder)
	}

	// This time the holder finishes while we wait.
	time.AfterFunc(100*time.Millisecond, func() { holder.Close() })
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lock, err := etcdlock.Acquire(ctx, client, "/locks/migrate")
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Close()
	fmt.Println("got the lock when the holder released it")
	// Output:
	// gave up waiting for: migration on db-2
	// got the lock when the holder released it
}

// A resource that takes writes only with a token at least as great as any
// it has seen turns away a holder that lost the lock and does not know it
// yet: its token is lower than the new holder's.
func ExampleLock_Token() {
	client := connect()
	defer client.Close()
	ctx := context.Background()
	store := &fencedStore{}

	first, err := etcdlock.New(ctx, client, "/locks/ledger")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first holder writes:", store.write(first.Token(), "a"))

	// The first holder stalls (a long pause, a partition) and its lease
	// runs out; here someone revokes it to the same effect.
	resp, err := client.Get(ctx, "/locks/ledger/", clientv3.WithPrefix())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		log.Fatal(err)
	}
	second, err := etcdlock.New(ctx, client, "/locks/ledger")
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()
	fmt.Println("second holder writes:", store.write(second.Token(), "b"))
	fmt.Println("first holder, late, writes:", store.write(first.Token(), "c"))
	fmt.Println("first holder's Close:", errors.Is(first.Close(), etcdlock.ErrLost))
	// Output:
	// first holder writes: accepted
	// second holder writes: accepted
	// first holder, late, writes: refused
	// first holder's Close: true
}

// A write into etcd itself is fenced in the transaction that makes it: it
// takes effect only while the lock is held.
func ExampleLock_IsOwner() {
	client := connect()
	defer client.Close()
	ctx := context.Background()
	lock, err := etcdlock.New(ctx, client, "/locks/config")
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Close()

	resp, err := client.Txn(ctx).If(lock.IsOwner()).Then(clientv3.OpPut("/config/version", "42")).Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("written under the lock:", resp.Succeeded)
	// Output:
	// written under the lock: true
}

// fencedStore stands for a database or a storage service that checks
// fencing tokens.
type fencedStore struct {
	mu     sync.Mutex
	latest int64
	data   []string
}

func (s *fencedStore) write(token int64, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.latest {
		return "refused"
	}
	s.latest = token
	s.data = append(s.data, value)
	return "accepted"
}

// Work under the lock stops as soon as the lock is lost.
func ExampleLock_Lost() {
	client := connect()
	defer client.Close()
	ctx := context.Background()
	lock, err := etcdlock.New(ctx, client, "/locks/compactor")
	if err != nil {
		log.Fatal(err)
	}

	// Someone deletes the lock's keys, as an operator clearing a lock
	// by hand would.
	time.AfterFunc(100*time.Millisecond, func() {
		client.Delete(ctx, "/locks/compactor/", clientv3.WithPrefix())
	})

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for working := true; working; {
		select {
		case <-tick.C:
			// One step of the work.
		case <-lock.Lost():
			fmt.Println("lock lost: stopping")
			working = false
		}
	}
	err = lock.Close()
	fmt.Println("Close reports the loss:", errors.Is(err, etcdlock.ErrLost))
	// Output:
	// lock lost: stopping
	// Close reports the loss: true
}

// runOnce runs job unless another instance holds the lock, and cancels
// job's context if the lock is lost. The README shows it.
func runOnce(ctx context.Context, client *clientv3.Client,
	job func(ctx context.Context, token int64) error) error {
	// New waits while etcd cannot be reached, as every call of the etcd
	// client does: bound it.
	tryCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lock, err := etcdlock.New(tryCtx, client, "/locks/report-job",
		etcdlock.WithContentTemplate("{pid};{hostname}"))
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) {
		return fmt.Errorf("already running: %s", lockErr.Holder)
	}
	if err != nil {
		return err // etcd did not answer in time, or refused the request
	}
	jobCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-lock.Lost(): // someone else may hold the lock now
			stop()
		case <-jobCtx.Done():
		}
	}()
	err = job(jobCtx, lock.Token()) // job fences its writes with the token
	if closeErr := lock.Close(); err == nil {
		err = closeErr // wraps etcdlock.ErrLost if the lock was lost
	}
	return err
}

// A job that must run once at a time across hosts, refused while it runs.
func Example_runOnce() {
	client := connect()
	defer client.Close()
	ctx := context.Background()
	err := runOnce(ctx, client, func(ctx context.Context, _ int64) error {
		// While the job runs, a second instance is refused.
		err := runOnce(ctx, client, func(context.Context, int64) error { return nil })
		refused := strings.HasPrefix(fmt.Sprint(err), "already running: ")
		fmt.Println("second instance refused:", refused)
		return nil
	})
	fmt.Println("first instance:", err)
	// Output:
	// second instance refused: true
	// first instance: <nil>
}

// held is what a service needs of its lock: a *lockfile.LockFile and an
// *etcdlock.Lock both have it.
type held interface {
	Lost() <-chan struct{}
	Close() error
}

// work runs one step at a time until the lock is lost or done closes, then
// releases the lock and says how it ended.
func work(name string, lock held, done <-chan struct{}) {
	for {
		select {
		case <-lock.Lost():
			fmt.Printf("%s: lock lost, work stopped (%v)\n", name, lock.Close() != nil)
			return
		case <-done:
			fmt.Printf("%s: done, released (%v)\n", name, lock.Close() == nil)
			return
		default:
			time.Sleep(time.Millisecond)
		}
	}
}

// The same service code holds a lock file on one host and an etcd lock
// across hosts, and stops its work when either is lost.
func Example_eitherKind() {
	dir, err := os.MkdirTemp("", "etcdlock-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fileLock, err := lockfile.New(dir + "/service.lock")
	if err != nil {
		log.Fatal(err)
	}
	client := connect()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	etcdLock, err := etcdlock.New(ctx, client, "/locks/either-kind")
	if err != nil {
		log.Fatal(err)
	}

	// The file lock ends its work normally; the etcd lock's key is
	// deleted under it, as an operator clearing a lock by hand would.
	done := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(done) })
	time.AfterFunc(100*time.Millisecond, func() {
		client.Delete(ctx, "/locks/either-kind/", clientv3.WithPrefix())
	})
	work("file", fileLock, done)
	work("etcd", etcdLock, make(chan struct{}))
	// Output:
	// file: done, released (true)
	// etcd: lock lost, work stopped (true)
}
