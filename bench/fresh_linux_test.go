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
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	// What Acquire must do once the lock is free, in the fewest
	// instructions: the hop, a look at the path (statx, the path passed
	// from the stack), and the content written.
	freshWaiters = append(freshWaiters, freshWaiter{"flock(LOCK_EX)+hop+statx+pwrite", func(ctx context.Context, path string) error {
		content := []byte(" " + strconv.Itoa(os.Getpid()) + "\n")
		type result struct {
			fd  int
			err error
		}
		done := make(chan result, 1)
		go func() {
			fd, err := rawWait(path)
			done <- result{fd, err}
		}()
		var fd int
		select {
		case r := <-done:
			if r.err != nil {
				return r.err
			}
			fd = r.fd
		case <-ctx.Done():
			return ctx.Err()
		}
		var name [256]byte
		copy(name[:len(name)-1], path)
		var stx unix.Statx_t
		dirfd := unix.AT_FDCWD
		if _, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])),
			unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_SIZE|unix.STATX_INO|unix.STATX_NLINK,
			uintptr(unsafe.Pointer(&stx)), 0); errno != 0 {
			return errno
		}
		_, err := unix.Pwrite(fd, content, 0)
		return err
	}})
}

// freshHandoff measures one handover to a fresh waiter process of kind i:
// h holds the lock, the waiter starts and blocks in flock(2), h releases
// the lock 1 to 11 ms later, and the time from the release to the waiter
// holding the lock is returned.
func freshHandoff(b *testing.B, exe, path string, h holder, i int) time.Duration {
	h.lock(b)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), freshWaiterEnv+"="+strconv.Itoa(i), freshPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill() // if this round failed, the waiter may still wait
		cmd.Wait()
	}()
	waitBlockedInFlock(b, cmd.Process.Pid)
	time.Sleep(time.Millisecond + rand.N(10*time.Millisecond))
	releasedAt := h.release(b)
	out := bufio.NewScanner(stdout)
	if !out.Scan() {
		b.Fatalf("%s: waiter process ended: %v", freshWaiters[i].name, out.Err())
	}
	acquiredAt, err := strconv.ParseInt(out.Text(), 10, 64)
	if err != nil {
		b.Fatalf("%s: %s", freshWaiters[i].name, out.Text())
	}
	return time.Duration(acquiredAt - releasedAt)
}

// waitBlockedInFlock returns once a thread of process pid is in flock(2),
// as /proc/PID/task/*/syscall shows: the first field is the number of the
// call a blocked thread is in.
func waitBlockedInFlock(b *testing.B, pid int) {
	want := strconv.Itoa(unix.SYS_FLOCK) + " "
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
		for _, task := range tasks {
			if text, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(text), want) {
				return
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.Fatalf("waiter process %d never blocked in flock", pid)
}

// BenchmarkFreshHandoff runs every fresh waiter once per round, in an order
// that rotates from round to round, each in a process of its own, against
// a holder in another process, and reports each one's p50 and p99 handoff
// latency in µs and its p50 as a multiple of the raw flock's.
//
// With LOCKFILE_BENCH_BASELINE naming this benchmark's test binary built
// against another version of the library, each round also runs that
// binary's lockfile waiters, reported with the prefix "base:", so that two
// versions are compared in the same rounds.
func BenchmarkFreshHandoff(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	type run struct {
		name string
		exe  string
		i    int // index in freshWaiters
	}
	base := os.Getenv("LOCKFILE_BENCH_BASELINE")
	if base != "" {
		// A waiter whose binary is the one this process and the holder
		// run finds its code in the CPU's caches, one of another binary
		// does not; run this binary's waiters from a copy of it, so that
		// both sides start alike.
		exe = copyFile(b, exe, filepath.Join(b.TempDir(), "waiter"))
	}
	var runs []run
	for i, w := range freshWaiters {
		runs = append(runs, run{w.name, exe, i})
	}
	if base != "" {
		for i, w := range freshWaiters {
			if strings.HasPrefix(w.name, "Acquire") {
				runs = append(runs, run{"base:" + w.name, base, i})
			}
		}
	}
	path := filepath.Join(b.TempDir(), "lock")
	h := startProcessHolder(b, path)
	latencies := make([][]time.Duration, len(runs))
	for round := 0; b.Loop(); round++ {
		for k := range runs {
			i := (round + k) % len(runs)
			latencies[i] = append(latencies[i], freshHandoff(b, runs[i].exe, path, h, runs[i].i))
		}
	}
	raw := percentile(latencies[freshRawFlock], 0.5)
	for i, r := range runs {
		p50 := percentile(latencies[i], 0.5)
		b.ReportMetric(p50, r.name+"-p50-µs")
		b.ReportMetric(percentile(latencies[i], 0.99), r.name+"-p99-µs")
		b.ReportMetric(p50/raw, r.name+"-p50-x-flock")
	}
}

func copyFile(b *testing.B, from, to string) string {
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		b.Fatal(err)
	}
	return to
}
