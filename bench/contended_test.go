//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golockfile/lockfile"
	"golang.org/x/sys/unix"
)

// Waits against a peer that blocks, and what idle waits cost. The peer
// takes the kind of lock the library takes in this build: flock(2), or
// with -tags lockfile_fcntl POSIX record locks (F_SETLKW), as AIX and
// Solaris have them. Run both builds to compare them side by side (see
// README.md, "Waiting on record locks").

const (
	peerEnv      = "LOCKFILE_BENCH_PEER" // "relock PATH" or "hold DIR N"
	peerHoldTime = 2 * time.Millisecond  // how long the relocking peer holds
	idleWaiters  = 1000                  // the waits whose CPU is measured
	idleWindow   = 2 * time.Second       // how long their CPU is measured
	relockRounds = 50                    // waits against the relocking peer per b.N
)

// runPeer is the peer process. "relock PATH" takes the lock, keeps it for
// peerHoldTime, releases it and at once waits for it again, until its
// stdin closes. "hold DIR N" locks DIR/0 to DIR/N-1, says so and holds
// them until its stdin closes.
func runPeer(spec string) int {
	fields := strings.Fields(spec)
	switch fields[0] {
	case "relock":
		fd, err := unix.Open(fields[1], unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		stop := make(chan struct{})
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			close(stop)
		}()
		if err := peerLock(fd, true); err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("locked")
		for {
			select {
			case <-stop:
				return 0
			default:
			}
			time.Sleep(peerHoldTime)
			peerUnlock(fd)
			if err := peerLock(fd, true); err != nil {
				fmt.Println("error", err)
				return 1
			}
		}
	case "hold":
		n, _ := strconv.Atoi(fields[2])
		for i := range n {
			fd, err := unix.Open(filepath.Join(fields[1], strconv.Itoa(i)), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
			if err != nil {
				fmt.Println("error", err)
				return 1
			}
			if err := peerLock(fd, false); err != nil {
				fmt.Println("error", err)
				return 1
			}
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		return 0
	}
	return 2
}

// startPeer starts the peer with spec and returns once it holds its locks,
// with a function that stops it.
func startPeer(b *testing.B, spec string) (stop func()) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), peerEnv+"="+spec)
	cmd.Stderr = os.Stderr
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
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "locked" {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("peer %q: %q %v", spec, out.Text(), out.Err())
	}
	return func() {
		stdin.Close()
		cmd.Wait()
	}
}

// BenchmarkWaitAgainstRelocker measures AcquireSimple against a peer
// process that holds the lock for 2 ms and waits for it again as soon as
// it lets go: a waiter that only tries now and then wins only in the
// instant between the two. It reports the mean and the p50 and p99 of the
// wait, in ms, over relockRounds waits per b.N.
func BenchmarkWaitAgainstRelocker(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lock")
	stop := startPeer(b, "relock "+path)
	defer stop()
	var waits []time.Duration
	for b.Loop() {
		for range relockRounds {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			l, err := lockfile.AcquireSimple(ctx, path)
			waits = append(waits, time.Since(start))
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
			// Let the peer have it again, as another waiter would.
			time.Sleep(time.Duration(rand.N(int64(peerHoldTime))))
		}
	}
	var sum time.Duration
	for _, w := range waits {
		sum += w
	}
	ms := float64(time.Millisecond) / float64(time.Microsecond)
	b.ReportMetric(float64(sum/time.Duration(len(waits)))/float64(time.Millisecond), "mean-ms")
	b.ReportMetric(percentile(waits, 0.5)/ms, "p50-ms")
	b.ReportMetric(percentile(waits, 0.99)/ms, "p99-ms")
}

// BenchmarkIdleWaiters measures the CPU that idleWaiters waits cost while
// the locks they wait for stay held: AcquireSimple on as many files, each
// with a context that can end it, held by a peer process. It reports this
// process's CPU time (user and system) over idleWindow as a percentage of
// one core, once per b.N.
func BenchmarkIdleWaiters(b *testing.B) {
	dir := b.TempDir()
	stop := startPeer(b, "hold "+dir+" "+strconv.Itoa(idleWaiters))
	defer stop()
	var percents []float64
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, idleWaiters)
		for i := range idleWaiters {
			go func() {
				_, err := lockfile.AcquireSimple(ctx, filepath.Join(dir, strconv.Itoa(i)))
				done <- err
			}()
		}
		time.Sleep(idleWindow / 4) // every wait begun
		before, start := cpuTime(b), time.Now()
		time.Sleep(idleWindow)
		used, wall := cpuTime(b)-before, time.Since(start)
		percents = append(percents, 100*float64(used)/float64(wall))
		cancel()
		for range idleWaiters {
			if err := <-done; err == nil {
				b.Fatal("a wait took a lock the peer holds")
			}
		}
	}
	var sum float64
	for _, p := range percents {
		sum += p
	}
	b.ReportMetric(sum/float64(len(percents)), "%core")
}

// cpuTime is the user and system time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
