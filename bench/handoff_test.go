//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

// Package bench compares lockfile with other ways to wait for a file lock.
// It is a module of its own so that the library itself depends on nothing
// but golang.org/x/sys.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/golockfile/lockfile"
	"golang.org/x/sys/unix"
)

// A waiter blocks until it holds the lock on path, and returns a function
// that releases it. Every waiter gets a context that can be cancelled, as a
// caller with a time-out would give it.
type waiter func(ctx context.Context, path string) (release func(), err error)

var waiters = []struct {
	name string
	wait waiter
}{
	{"lockfile.AcquireSimple", func(ctx context.Context, path string) (func(), error) {
		l, err := lockfile.AcquireSimple(ctx, path)
		if err != nil {
			return nil, err
		}
		return func() { l.Close() }, nil
	}},
	{"lockfile.Acquire", func(ctx context.Context, path string) (func(), error) {
		l, err := lockfile.Acquire(ctx, path)
		if err != nil {
			return nil, err
		}
		return func() { l.Close() }, nil
	}},
	// The floor: a goroutine blocked in flock(2), which no context can
	// stop. Its p50 is what the ratios are taken against.
	{"flock(LOCK_EX)", func(ctx context.Context, path string) (func(), error) {
		f, err := openAndFlock(path)
		if err != nil {
			return nil, err
		}
		return func() { f.Close() }, nil
	}},
	// The same, with the one goroutine hop that any wait a caller can
	// abandon needs: the blocked call runs in another goroutine.
	{"flock(LOCK_EX)+hop", func(ctx context.Context, path string) (func(), error) {
		type result struct {
			f   *os.File
			err error
		}
		hop := make(chan result)
		go func() {
			f, err := openAndFlock(path)
			hop <- result{f, err}
		}()
		r := <-hop
		if r.err != nil {
			return nil, r.err
		}
		return func() { r.f.Close() }, nil
	}},
	{"gofrs.TryLockContext-1ms", gofrs(time.Millisecond)},
	{"gofrs.TryLockContext-10ms", gofrs(10 * time.Millisecond)},
}

const rawFlock = 2 // index of the baseline in waiters

func openAndFlock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func gofrs(retryDelay time.Duration) waiter {
	return func(ctx context.Context, path string) (func(), error) {
		f := flock.New(path)
		ok, err := f.TryLockContext(ctx, retryDelay)
		if err != nil || !ok {
			return nil, fmt.Errorf("gofrs/flock: %v (locked: %v)", err, ok)
		}
		return func() { f.Unlock() }, nil
	}
}

// A holder takes the lock and, when told, releases it and says when, in
// Unix nanoseconds: a clock that processes on one machine share.
type holder interface {
	lock(b *testing.B)
	release(b *testing.B) int64
}

// goroutineHolder holds the lock through a descriptor of this process.
type goroutineHolder struct{ f *os.File }

func (h *goroutineHolder) lock(b *testing.B) {
	if err := unix.Flock(int(h.f.Fd()), unix.LOCK_EX); err != nil {
		b.Fatal(err)
	}
}

func (h *goroutineHolder) release(b *testing.B) int64 {
	at := time.Now().UnixNano()
	if err := unix.Flock(int(h.f.Fd()), unix.LOCK_UN); err != nil {
		b.Fatal(err)
	}
	return at
}

// processHolder holds the lock in a child process, the case an
// inter-process lock is for. It speaks one line at a time over pipes.
type processHolder struct {
	stdin *os.File
	out   *bufio.Scanner
}

const holderEnv = "LOCKFILE_BENCH_HOLDER"

func TestMain(m *testing.M) {
	if path := os.Getenv(holderEnv); path != "" {
		os.Exit(runHolder(path))
	}
	if spec := os.Getenv(peerEnv); spec != "" {
		os.Exit(runPeer(spec))
	}
	if kind := os.Getenv(freshWaiterEnv); kind != "" {
		os.Exit(runFreshWaiter(kind, os.Getenv(freshPathEnv)))
	}
	os.Exit(m.Run())
}

func runHolder(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "lock":
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				fmt.Println("error", err)
				return 1
			}
			fmt.Println("locked")
		case "release":
			at := time.Now().UnixNano()
			if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
				fmt.Println("error", err)
				return 1
			}
			fmt.Println(at)
		}
	}
	return 0
}

func startProcessHolder(b *testing.B, path string) *processHolder {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	return &processHolder{stdin: stdin.(*os.File), out: bufio.NewScanner(stdout)}
}

func (h *processHolder) ask(b *testing.B, command string) string {
	if _, err := fmt.Fprintln(h.stdin, command); err != nil {
		b.Fatal(err)
	}
	if !h.out.Scan() {
		b.Fatalf("holder process ended: %v", h.out.Err())
	}
	return h.out.Text()
}

func (h *processHolder) lock(b *testing.B) {
	if reply := h.ask(b, "lock"); reply != "locked" {
		b.Fatal(reply)
	}
}

func (h *processHolder) release(b *testing.B) int64 {
	reply := h.ask(b, "release")
	at, err := strconv.ParseInt(reply, 10, 64)
	if err != nil {
		b.Fatal(reply)
	}
	return at
}

// handoff measures one handover: h releases the lock while w waits for it,
// and the time from the release to w holding the lock is returned. h keeps
// the lock for a random 1 to 11 ms first, so that the wait is a real one
// and a poller's phase against the release is random.
func handoff(b *testing.B, path string, h holder, w waiter) time.Duration {
	h.lock(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acquiredAt := make(chan int64, 1)
	go func() {
		release, err := w(ctx, path)
		at := time.Now().UnixNano()
		if err != nil {
			b.Error(err)
		} else {
			release()
		}
		acquiredAt <- at
	}()
	time.Sleep(time.Millisecond + rand.N(10*time.Millisecond))
	releasedAt := h.release(b)
	return time.Duration(<-acquiredAt - releasedAt)
}

// BenchmarkHandoff runs every waiter once per round, interleaved so that
// all of them see the same machine, and reports each one's p50 and p99
// handoff latency in µs and its p50 as a multiple of the raw flock's.
func BenchmarkHandoff(b *testing.B) {
	for _, kind := range []string{"process", "goroutine"} {
		b.Run("holder="+kind, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "lock")
			var h holder
			if kind == "process" {
				h = startProcessHolder(b, path)
			} else {
				f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				h = &goroutineHolder{f}
			}
			latencies := make([][]time.Duration, len(waiters))
			for round := 0; b.Loop(); round++ {
				// Each round starts with another waiter, so that none is
				// always the one that runs after the slow pollers.
				for k := range waiters {
					i := (round + k) % len(waiters)
					latencies[i] = append(latencies[i], handoff(b, path, h, waiters[i].wait))
				}
			}
			raw := percentile(latencies[rawFlock], 0.5)
			for i, w := range waiters {
				p50 := percentile(latencies[i], 0.5)
				b.ReportMetric(p50, w.name+"-p50-µs")
				b.ReportMetric(percentile(latencies[i], 0.99), w.name+"-p99-µs")
				b.ReportMetric(p50/raw, w.name+"-p50-x-flock")
			}
		})
	}
}

func percentile(d []time.Duration, p float64) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[int(p*float64(len(d)-1))]) / float64(time.Microsecond)
}
