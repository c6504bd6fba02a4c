//go:build unix

package lockfile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mixedStormEnv runs the helper of TestMixedWaitStorm in a child process:
// "SEED DIR" (a helper of this file, run from init before TestMain).
const mixedStormEnv = "LOCKFILE_TEST_MIXED_STORM"

func init() {
	if spec := os.Getenv(mixedStormEnv); spec != "" {
		seed, dir, _ := strings.Cut(spec, " ")
		n, _ := strconv.Atoi(seed)
		r := mixedStorm(dir, uint64(n))
		fmt.Printf("done %d %d %d %d\n", r.cycles, r.gaveUp, r.overlaps, r.errors)
		os.Exit(0)
	}
}

type stormResult struct{ cycles, gaveUp, overlaps, errors int64 }

// mixedStorm takes shared and exclusive locks on DIR/lock in every way,
// waits among them with deadlines short enough that many are given up,
// while other processes do the same. Inside, each holder leaves a marker
// in DIR/inside and looks at the others: an exclusive holder must find
// none, a shared one no exclusive one.
func mixedStorm(dir string, seed uint64) stormResult {
	const goroutines, rounds = 8, 150
	path := filepath.Join(dir, "lock")
	inside := filepath.Join(dir, "inside")
	deadlines := []time.Duration{100 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, time.Minute}
	var cycles, gaveUp, overlaps, failures atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), deadlines[rng.IntN(len(deadlines))])
				sharedLock := rng.IntN(2) == 0
				var (
					l   *SimpleLockFile
					err error
				)
				switch wait := rng.IntN(3) != 0; {
				case sharedLock && wait:
					l, err = AcquireShared(ctx, path)
				case sharedLock:
					l, err = NewShared(path)
				case wait:
					l, err = AcquireSimple(ctx, path)
				default:
					l, err = NewSimple(path)
				}
				cancel()
				if errors.Is(err, ErrLocked) {
					gaveUp.Add(1)
					continue
				}
				if err != nil {
					failures.Add(1)
					fmt.Fprintln(os.Stderr, "mixed storm:", err)
					return
				}
				kind := map[bool]string{false: "x", true: "s"}[sharedLock]
				marker := filepath.Join(inside, fmt.Sprintf("%s-%d-%d-%d", kind, os.Getpid(), g, i))
				if err := os.WriteFile(marker, nil, 0o644); err != nil {
					failures.Add(1)
					fmt.Fprintln(os.Stderr, "mixed storm:", err)
				}
				others, _ := os.ReadDir(inside)
				for _, o := range others {
					if o.Name() != filepath.Base(marker) && (!sharedLock || strings.HasPrefix(o.Name(), "x-")) {
						overlaps.Add(1)
					}
				}
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				os.Remove(marker)
				if err := l.Close(); err != nil {
					failures.Add(1)
					fmt.Fprintln(os.Stderr, "mixed storm:", err)
				}
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	return stormResult{cycles.Load(), gaveUp.Load(), overlaps.Load(), failures.Load()}
}

// Three processes take shared and exclusive locks on one file in every
// way, giving up many waits at once, so that a wait given up is still in
// the kernel while the process takes, shares and releases the lock through
// other lock objects. No exclusive holder may ever be inside with another
// holder, of its process or another.
func TestMixedWaitStorm(t *testing.T) {
	dir := testDir(t)
	if err := os.Mkdir(filepath.Join(dir, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var peers []*helper
	for seed := range 2 {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), mixedStormEnv+"="+strconv.Itoa(seed+1)+" "+dir)
		peers = append(peers, startProcess(t, cmd))
	}
	total := mixedStorm(dir, 0)
	for _, h := range peers {
		var r stormResult
		if _, err := fmt.Sscan(h.expect(t, "done"), &r.cycles, &r.gaveUp, &r.overlaps, &r.errors); err != nil {
			t.Fatal(err)
		}
		h.finish(t)
		total.cycles, total.gaveUp = total.cycles+r.cycles, total.gaveUp+r.gaveUp
		total.overlaps, total.errors = total.overlaps+r.overlaps, total.errors+r.errors
	}
	t.Logf("3 processes: %d lock cycles, %d attempts refused or given up, %d overlaps, %d errors",
		total.cycles, total.gaveUp, total.overlaps, total.errors)
	if total.overlaps != 0 || total.errors != 0 {
		t.Fatalf("%d times an exclusive holder was inside with another holder; %d errors", total.overlaps, total.errors)
	}
	if total.cycles < 3*8*150/10 || total.gaveUp < 3*8*150/10 {
		t.Fatalf("%d cycles and %d refusals of %d attempts: too few of either to tell", total.cycles, total.gaveUp, 3*8*150)
	}
	assertFree(t, filepath.Join(dir, "lock"))
}
