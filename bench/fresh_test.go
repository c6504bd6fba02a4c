//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/golockfile/lockfile"
	"golang.org/x/sys/unix"
)

// A freshWaiter takes the lock on path in a process that has done nothing
// else yet: a service that waits at start-up for its previous instance.
// It gets a context with a deadline, as a caller with a time-out would give
// it, and keeps the lock until the process exits.
type freshWaiter struct {
	name string
	wait func(ctx context.Context, path string) error
}

var freshWaiters = []freshWaiter{
	// The floor: a blocking flock(2), which nothing can stop.
	{"flock(LOCK_EX)", func(_ context.Context, path string) error {
		_, err := rawWait(path)
		return err
	}},
	// The same call in a goroutine of its own, with the caller in a select
	// on the context: the least that any wait a context can end must pay.
	{"flock(LOCK_EX)+hop", func(ctx context.Context, path string) error {
		done := make(chan error, 1)
		go func() {
			_, err := rawWait(path)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}},
	{"AcquireSimple", func(ctx context.Context, path string) error {
		_, err := lockfile.AcquireSimple(ctx, path)
		return err
	}},
	{"Acquire", func(ctx context.Context, path string) error {
		_, err := lockfile.Acquire(ctx, path)
		return err
	}},
	// A context that is never done: the call blocks in the caller's own
	// goroutine, with no hop.
	{"AcquireSimple(Background)", func(_ context.Context, path string) error {
		_, err := lockfile.AcquireSimple(context.Background(), path)
		return err
	}},
}

const freshRawFlock = 0 // index of the baseline in freshWaiters

func rawWait(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return -1, err
	}
	return fd, unix.Flock(fd, unix.LOCK_EX)
}

const (
	freshWaiterEnv = "LOCKFILE_BENCH_FRESH_WAITER" // index in freshWaiters
	freshPathEnv   = "LOCKFILE_BENCH_FRESH_PATH"
)

// runFreshWaiter is the waiter process: it takes the lock, prints the time
// it held it, in Unix nanoseconds, and exits, which releases the lock.
func runFreshWaiter(kind, path string) int {
	i, err := strconv.Atoi(kind)
	if err != nil || i < 0 || i >= len(freshWaiters) {
		fmt.Println("error: no waiter", kind)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = freshWaiters[i].wait(ctx, path)
	at := time.Now().UnixNano()
	cancel()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(at)
	return 0
}
