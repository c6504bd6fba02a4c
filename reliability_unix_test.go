//go:build unix

package lockfile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// zcCounter is a worker built on zc.lockfile the way its users build them:
// a retry loop around the non-blocking LockFile.
const zcCounter = `
import sys, time, zc.lockfile
lock_path, counter_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(rounds):
    while True:
        try:
            lock = zc.lockfile.LockFile(lock_path, content_template="{pid} python")
            break
        except zc.lockfile.LockError:
            time.sleep(0.0002)
    with open(counter_path) as f:
        n = int(f.read().strip() or 0)
    with open(counter_path, "w") as f:
        f.write(str(n + 1))
    lock.close()
print("done", flush=True)
`

// flockCounter is a worker built on util-linux flock(1), which waits for
// the lock in the kernel. A counter caught half-written by an overlapping
// worker (in the negative control) reads as 0: an update lost, as it is.
const flockCounter = `
flock=$1 lock=$2 counter=$3 rounds=$4
i=0
while [ "$i" -lt "$rounds" ]; do
	"$flock" "$lock" sh -c 'n=$(cat "$1"); case $n in ""|*[!0-9]*) n=0 ;; esac; echo $((n + 1)) >"$1"' sh "$counter" || exit 1
	i=$((i + 1))
done
echo done
`

// mixedCount runs workers of this package, of zc.lockfile and of flock(1)
// that all add to one counter, and returns how many increments they made
// and what the counter says. With shared false each worker locks a file of
// its own, which is no lock at all: the negative control.
func mixedCount(t *testing.T, shared bool) (increments, counted, overlaps int) {
	t.Helper()
	python, flock := zcPython(t), flockCommand(t)
	dir := testDir(t)
	counterPath := filepath.Join(dir, "counter")
	markerPath := filepath.Join(dir, "inside")
	writeFile(t, counterPath, "0")
	worker := 0
	lockPath := func() string {
		worker++
		if shared {
			return filepath.Join(dir, "lock")
		}
		return filepath.Join(dir, "lock-"+strconv.Itoa(worker))
	}
	const goWorkers, goRounds = 3, 600
	const pyWorkers, pyRounds = 2, 300
	const flockWorkers, flockRounds = 2, 150
	var goHelpers, others []*helper
	for range goWorkers {
		goHelpers = append(goHelpers, startHelper(t, "critical", lockPath(), counterPath, markerPath, strconv.Itoa(goRounds)))
	}
	for range pyWorkers {
		others = append(others, startProcess(t, exec.Command(python, "-c", zcPrelude+zcCounter, lockPath(), counterPath, strconv.Itoa(pyRounds))))
	}
	for range flockWorkers {
		others = append(others, startProcess(t, exec.Command("sh", "-c", flockCounter, "sh", flock, lockPath(), counterPath, strconv.Itoa(flockRounds))))
	}
	for _, h := range goHelpers {
		n, err := strconv.Atoi(h.expect(t, "done"))
		if err != nil {
			t.Fatal(err)
		}
		overlaps += n
		h.finish(t)
	}
	for _, h := range others {
		h.expect(t, "done")
		h.finish(t)
	}
	counted, err := strconv.Atoi(strings.TrimSpace(readFile(t, counterPath)))
	if err != nil {
		t.Fatal(err)
	}
	return goWorkers*goRounds + pyWorkers*pyRounds + flockWorkers*flockRounds, counted, overlaps
}

// Processes of this package (Acquire), of zc.lockfile (retrying) and of
// flock(1) (waiting) increment one counter under one lock file. The same
// run with a lock file for each worker shows that the counter does lose
// updates when nothing excludes, so an exact count means something.
func TestMixedImplementationsCountExactly(t *testing.T) {
	increments, counted, overlaps := mixedCount(t, false)
	t.Logf("negative control, no shared lock: %d increments, counter %d, %d lost, %d overlaps seen by Go workers",
		increments, counted, increments-counted, overlaps)
	if counted >= increments && overlaps == 0 {
		t.Fatalf("without a shared lock no update was lost (%d increments, counter %d): the counter cannot detect overlap", increments, counted)
	}

	increments, counted, overlaps = mixedCount(t, true)
	t.Logf("one lock file: %d increments, counter %d, %d overlaps", increments, counted, overlaps)
	if counted != increments || overlaps != 0 {
		t.Fatalf("under one lock: %d increments, counter %d, %d overlaps: two workers held the lock at once",
			increments, counted, overlaps)
	}
}

// 64 goroutines take and release locks on three paths through every way
// there is to take one; a count of holders per path, kept atomically, must
// never exceed one.
func TestGoroutineStorm(t *testing.T) {
	dir := testDir(t)
	const goroutines, rounds, paths = 64, 500, 3
	var (
		holders  [paths]atomic.Int32
		cycles   atomic.Int64
		refused  atomic.Int64
		overlaps atomic.Int64
	)
	takes := []func(ctx context.Context, path string) (interface{ Close() error }, error){
		func(_ context.Context, p string) (interface{ Close() error }, error) { return New(p) },
		func(_ context.Context, p string) (interface{ Close() error }, error) { return NewSimple(p) },
		func(ctx context.Context, p string) (interface{ Close() error }, error) { return Acquire(ctx, p) },
		func(ctx context.Context, p string) (interface{ Close() error }, error) { return AcquireSimple(ctx, p) },
		func(_ context.Context, p string) (interface{ Close() error }, error) {
			return Acquire(context.Background(), p) // blocks in the caller's own thread
		},
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range rounds {
				i := rng.IntN(paths)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				l, err := takes[rng.IntN(len(takes))](ctx, filepath.Join(dir, "lock-"+strconv.Itoa(i)))
				cancel()
				if errors.Is(err, ErrLocked) {
					refused.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				holdCounted(t, l, &holders[i], &overlaps, runtime.Gosched)
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d goroutines: %d lock cycles, %d refused attempts, %d overlaps", goroutines, cycles.Load(), refused.Load(), overlaps.Load())
	if overlaps.Load() != 0 {
		t.Fatalf("%d times two goroutines held one lock at once", overlaps.Load())
	}
	if cycles.Load() < goroutines*rounds/4 {
		t.Fatalf("only %d of %d attempts held a lock: the storm hardly stormed", cycles.Load(), goroutines*rounds)
	}
}

// 100,000 lock cycles in one process, by every way of taking a lock and with
// refused attempts among them, must leave descriptors, goroutines and the
// heap as they were after warm-up.
func TestSoak(t *testing.T) {
	const warmUp, cycles = 2_000, 100_000
	dir := testDir(t)
	path, heldPath := filepath.Join(dir, "lock"), filepath.Join(dir, "held")
	other, err := New(heldPath, WithContentTemplate("other {pid}"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	template := WithContentTemplate("{pid};{hostname}")
	cycle := func(i int) {
		var l interface{ Close() error }
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		switch i % 5 {
		case 0:
			l, err = New(path, template)
		case 1:
			l, err = NewSimple(path)
		case 2:
			l, err = Acquire(ctx, path, template)
		case 3:
			l, err = AcquireSimple(ctx, path)
		case 4:
			if _, err := New(heldPath); !errors.Is(err, ErrLocked) {
				t.Fatalf("cycle %d: New on a held lock: %v", i, err)
			}
			if st, err := Inspect(heldPath); err != nil || !st.Held || st.Holder != other.Content() {
				t.Fatalf("cycle %d: Holder = %+v, %v", i, st, err)
			}
			l, err = New(path)
		}
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	measure := func() (fds, goroutines int, heap uint64) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return openDescriptors(t), runtime.NumGoroutine(), m.HeapAlloc
	}
	for i := range warmUp {
		cycle(i)
	}
	fdsBefore, goroutinesBefore, heapBefore := measure()
	for i := range cycles {
		cycle(i)
	}
	fdsAfter, goroutinesAfter, heapAfter := measure()
	t.Logf("%d cycles: descriptors %d -> %d, goroutines %d -> %d, heap in use %d -> %d bytes",
		cycles, fdsBefore, fdsAfter, goroutinesBefore, goroutinesAfter, heapBefore, heapAfter)
	if fdsAfter != fdsBefore || goroutinesAfter != goroutinesBefore {
		t.Fatalf("descriptors %d -> %d, goroutines %d -> %d over %d cycles", fdsBefore, fdsAfter, goroutinesBefore, goroutinesAfter, cycles)
	}
	// A leak of a few bytes a cycle shows as hundreds of kilobytes; the
	// slack is for what the runtime and the test framework allocate.
	if heapAfter > heapBefore+256<<10 {
		t.Fatalf("heap grew from %d to %d bytes over %d cycles", heapBefore, heapAfter, cycles)
	}
}

// A lock file removed or replaced while processes wait on it. Two holders
// at once cannot be prevented when the file is removed while someone holds
// it: the holder keeps the lock on the removed file and a newcomer creates
// and locks a new one, whatever program they are. What a lock file can
// promise, and Acquire does, is that a waiter never ends up holding the old
// file once it is no longer at the path. So here the cleaner takes the lock
// before it removes or replaces the file, as a cleaner that respects locks
// does: no worker ever holds the removed file, yet many wait on it. With
// workers of this package no two may be inside at once; flock(1), which
// waits on whatever file it opened and never looks again, is the control
// that shows the scenario does produce overlaps.
func TestLockFileRemovedWhileWaiting(t *testing.T) {
	flock := flockCommand(t)
	t.Run("Acquire", func(t *testing.T) {
		const workers, rounds = 4, 300
		removals, increments, counted, overlaps := removedWhileWaiting(t, func(lockPath, counterPath, markerPath string) *helper {
			return startHelper(t, "critical", lockPath, counterPath, markerPath, strconv.Itoa(rounds))
		}, workers, rounds)
		t.Logf("%d removals and replacements of the lock file; %d increments, counter %d, %d overlaps", removals, increments, counted, overlaps)
		if counted != increments || overlaps != 0 {
			t.Fatalf("two workers held the lock at once: %d increments, counter %d, %d overlaps", increments, counted, overlaps)
		}
		// Where locks belong to the process, waits poll (see lock_fcntl.go),
		// and the cleaner, one poller among five, gets the lock less often.
		if minRemovals := map[bool]int{false: 20, true: 10}[recordLocks]; removals < minRemovals {
			t.Fatalf("the lock file was removed only %d times", removals)
		}
	})
	t.Run("flock(1) control", func(t *testing.T) {
		const workers, rounds = 3, 100
		removals, increments, counted, overlaps := removedWhileWaiting(t, func(lockPath, counterPath, markerPath string) *helper {
			return startProcess(t, exec.Command("sh", "-c", flockCritical, "sh", flock, lockPath, counterPath, markerPath, strconv.Itoa(rounds)))
		}, workers, rounds)
		t.Logf("%d removals and replacements of the lock file; %d increments, counter %d, %d overlaps", removals, increments, counted, overlaps)
		if counted == increments && overlaps == 0 {
			t.Fatal("workers that never look at the path again were never inside at once: the test cannot see what it tests")
		}
	})
}

// flockCritical is criticalWork done by a flock(1) worker.
const flockCritical = `
flock=$1 lock=$2 counter=$3 marker=$4 rounds=$5
overlaps=0 i=0
while [ "$i" -lt "$rounds" ]; do
	"$flock" "$lock" sh -c '
		set -C
		if (: >"$2") 2>/dev/null; then alone=1; else alone=0; fi
		n=$(cat "$1"); case $n in ""|*[!0-9]*) n=0 ;; esac; echo $((n + 1)) >|"$1"
		if [ "$alone" = 1 ]; then rm -f "$2"; else exit 3; fi' sh "$counter" "$marker"
	status=$?
	case $status in 0) ;; 3) overlaps=$((overlaps + 1)) ;; *) echo "error flock(1) exited with $status"; exit 1 ;; esac
	i=$((i + 1))
done
echo "done $overlaps"
`

// removedWhileWaiting runs workers (each reporting "done OVERLAPS") while
// this process keeps taking the lock, letting waiters queue on the file,
// and then removing the file or renaming a new one over it.
func removedWhileWaiting(t *testing.T, start func(lockPath, counterPath, markerPath string) *helper, workers, rounds int) (removals, increments, counted, overlaps int) {
	t.Helper()
	dir := testDir(t)
	lockPath, counterPath, markerPath := filepath.Join(dir, "lock"), filepath.Join(dir, "counter"), filepath.Join(dir, "inside")
	writeFile(t, counterPath, "0")
	var helpers []*helper
	for range workers {
		helpers = append(helpers, start(lockPath, counterPath, markerPath))
	}
	stop := make(chan struct{})
	cleanerDone := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				cleanerDone <- nil
				return
			default:
			}
			l, err := AcquireSimple(context.Background(), lockPath)
			if err != nil {
				cleanerDone <- err
				return
			}
			time.Sleep(time.Millisecond) // waiters queue on this file
			if removals%2 == 0 {
				err = os.Remove(lockPath)
			} else {
				replacement := filepath.Join(dir, "replacement")
				if err = os.WriteFile(replacement, []byte(" replaced\n"), 0o644); err == nil {
					err = os.Rename(replacement, lockPath)
				}
			}
			removals++
			if err = errors.Join(err, l.Close()); err != nil {
				cleanerDone <- err
				return
			}
			time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Millisecond))))
		}
	}()
	for _, h := range helpers {
		verb, rest := h.next(t)
		if verb != "done" {
			close(stop)
			t.Fatalf("worker reported %s %s", verb, rest)
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			t.Fatal(err)
		}
		overlaps += n
		h.finish(t)
	}
	close(stop)
	if err := <-cleanerDone; err != nil {
		t.Fatalf("cleaner: %v", err)
	}
	counted, err := strconv.Atoi(strings.TrimSpace(readFile(t, counterPath)))
	if err != nil {
		t.Fatal(err)
	}
	return removals, workers * rounds, counted, overlaps
}

// What Acquire promises, looked at where it can be seen: a cleaner removes
// the lock file only while it holds the lock, so whoever else holds a lock
// must hold the file at the path. Each lock taken is checked while it is
// held, whether taken at once or after a wait, by AcquireSimple or by
// NewSimple retried. The check is a hook, so NewSimple looks at the file it
// locked, as New does; a bare NewSimple does not look (see its doc). The
// lockers are goroutines: flock locks belong to the open file, so each
// excludes the others as processes would, and one process runs many more
// cycles than processes could in the same time.
func TestLockedFileIsAtThePath(t *testing.T) {
	for _, how := range []string{"AcquireSimple", "NewSimple"} {
		t.Run(how, func(t *testing.T) {
			lockedFileIsAtThePath(t, how)
		})
	}
}

func lockedFileIsAtThePath(t *testing.T, how string) {
	const lockers, rounds = 4, 3000
	path := tempLockPath(t)
	var removals, misses, cycles atomic.Int64
	checkAtPath := WithOnLock(func(f *os.File) error {
		locked, err := f.Stat()
		if err != nil {
			return err
		}
		if atPath, err := os.Lstat(path); err != nil || !os.SameFile(locked, atPath) {
			misses.Add(1)
		}
		return nil
	})
	stop := make(chan struct{})
	cleanerDone := make(chan struct{})
	go func() {
		defer close(cleanerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			l, err := NewSimple(path)
			if err != nil {
				runtime.Gosched() // held by a locker
				continue
			}
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
			removals.Add(1)
			l.Close()
		}
	}()
	take := func(i, round int) (*SimpleLockFile, error) {
		if how == "NewSimple" {
			for {
				l, err := NewSimple(path, checkAtPath)
				if !errors.Is(err, ErrLocked) {
					return l, err
				}
				runtime.Gosched()
			}
		}
		ctx := context.Background()
		if (i+round)%2 == 0 {
			// A context that can end waits through the shared waiter.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Minute)
			defer cancel()
		}
		return AcquireSimple(ctx, path, checkAtPath)
	}
	var wg sync.WaitGroup
	var gaveUp atomic.Int64
	for i := range lockers {
		wg.Go(func() {
			for round := range rounds {
				l, err := take(i, round)
				if errors.Is(err, fs.ErrExist) {
					// Opening gives up after losing the race to create
					// the file eight times running, which a cleaner this
					// fast makes happen; it is no lock on a wrong file.
					gaveUp.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				l.Close()
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-cleanerDone
	t.Logf("%d locks taken while the file was removed %d times; %d were on a file no longer at the path; %d opens gave up",
		cycles.Load(), removals.Load(), misses.Load(), gaveUp.Load())
	if misses.Load() != 0 {
		t.Fatalf("%d of %d locks from %s were on a file no longer at the path", misses.Load(), cycles.Load(), how)
	}
	// Enough to have tested something; a loaded machine gives the cleaner
	// fewer turns.
	if removals.Load() < 20 {
		t.Fatalf("the file was removed only %d times", removals.Load())
	}
}

// Waits given up at every moment (before the waiter opens its file, while
// it blocks, as it takes the lock) detach the waiter's descriptor, and a
// caller that comes later joins a detached waiter and starts over when it
// ends. None of that may let two callers hold one lock: goroutines with
// deadlines of 50 µs to 5 ms count who is inside.
func TestAbandonedWaitStorm(t *testing.T) {
	dir := testDir(t)
	const goroutines, rounds, paths = 32, 400, 2
	deadlines := []time.Duration{50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond}
	var holders [paths]atomic.Int32
	var cycles, gaveUp, overlaps atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range rounds {
				i := rng.IntN(paths)
				ctx, cancel := context.WithTimeout(context.Background(), deadlines[rng.IntN(len(deadlines))])
				l, err := AcquireSimple(ctx, filepath.Join(dir, "lock-"+strconv.Itoa(i)))
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					gaveUp.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				holdCounted(t, l, &holders[i], &overlaps, func() {
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				})
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d goroutines: %d lock cycles, %d waits given up, %d overlaps", goroutines, cycles.Load(), gaveUp.Load(), overlaps.Load())
	if overlaps.Load() != 0 {
		t.Fatalf("%d times two goroutines held one lock at once", overlaps.Load())
	}
	if cycles.Load() < goroutines*rounds/10 || gaveUp.Load() < goroutines*rounds/10 {
		t.Fatalf("%d cycles and %d waits given up of %d attempts: too few of either to tell", cycles.Load(), gaveUp.Load(), goroutines*rounds)
	}
	for i := range paths {
		path := filepath.Join(dir, "lock-"+strconv.Itoa(i))
		waitUntil(t, "the waiters to end", func() bool { return waiterOn(path) == nil })
		assertFree(t, path)
	}
}

// holdCounted counts l's holder inside while pause runs, and an overlap if
// another holder of the same lock was inside too, then closes l.
func holdCounted(t *testing.T, l io.Closer, inside *atomic.Int32, overlaps *atomic.Int64, pause func()) {
	if inside.Add(1) > 1 {
		overlaps.Add(1)
	}
	pause()
	inside.Add(-1)
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}
