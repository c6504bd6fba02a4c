//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package bench

import (
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/golockfile/lockfile"
	"golang.org/x/sys/unix"
)

// A cycler takes and releases an uncontended lock on the file at path once
// per call; i counts the calls, for those that alternate their content.
type cycler struct {
	name  string
	setup func(b *testing.B) func(b *testing.B, path string, i int)
}

// The two contents a content-writing cycle alternates between: the same
// length, as when a service restarts with a new pid of as many digits.
var contents = [2]string{"{pid};a", "{pid};b"}

var cyclers = []cycler{
	// The floor for a lock without content: the four calls, nothing else.
	{"raw", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			rawUnlock(rawLock(b, path))
		}
	}},
	// The naive way to keep content in the file: write, truncate, every time.
	{"raw-content", func(b *testing.B) func(*testing.B, string, int) {
		var rendered [2][]byte
		for i, c := range contents {
			text, err := lockfile.ExpandTemplate(c)
			if err != nil {
				b.Fatal(err)
			}
			rendered[i] = []byte(" " + text + "\n")
		}
		return func(b *testing.B, path string, i int) {
			fd := rawLock(b, path)
			content := rendered[i%2]
			if _, err := unix.Pwrite(fd, content, 0); err != nil {
				b.Fatal(err)
			}
			if err := unix.Ftruncate(fd, int64(len(content))); err != nil {
				b.Fatal(err)
			}
			rawUnlock(fd)
		}
	}},
	{"gofrs-flock", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			f := flock.New(path)
			if ok, err := f.TryLock(); !ok || err != nil {
				b.Fatal(ok, err)
			}
			f.Close()
		}
	}},
	{"NewSimple", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			l, err := lockfile.NewSimple(path)
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
		}
	}},
	{"New", func(*testing.B) func(*testing.B, string, int) {
		opts := [2]lockfile.Option{lockfile.WithContentTemplate(contents[0]), lockfile.WithContentTemplate(contents[1])}
		return func(b *testing.B, path string, i int) {
			l, err := lockfile.New(path, opts[i%2])
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
		}
	}},
}

func rawLock(b *testing.B, path string) int {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b.Fatal(err)
	}
	return fd
}

func rawUnlock(fd int) {
	unix.Flock(fd, unix.LOCK_UN)
	unix.Close(fd)
}

// The goals, as ratios of one cycler's median time to another's, measured
// in the same rounds so that the machine's ups and downs cancel.
var ratioGoals = []struct {
	of, to string
	max    float64
}{
	{"NewSimple", "raw", 1.10},
	{"NewSimple", "gofrs-flock", 0.75},
	{"New", "raw-content", 0.75},
}

// cyclesPerBatch is how many cycles each cycler runs in a row, timed as one.
const cyclesPerBatch = 200

// BenchmarkCycle runs every cycler for a batch per round, in an order that
// rotates from round to round, and reports each one's median ns and
// allocations per cycle, and the ratios the goals are stated in, each the
// median of the ratios within a round.
func BenchmarkCycle(b *testing.B) {
	dir := b.TempDir()
	runs := make([]func(*testing.B, string, int), len(cyclers))
	paths := make([]string, len(cyclers))
	for i, c := range cyclers {
		runs[i] = c.setup(b)
		paths[i] = filepath.Join(dir, strconv.Itoa(i)+".lock")
		runs[i](b, paths[i], 0) // create the file: the cycles measured find it there
	}
	nsPerCycle := make([][]float64, len(cyclers))
	allocsPerCycle := make([][]float64, len(cyclers))
	var before, after runtime.MemStats
	for round := 0; b.Loop(); round++ {
		for k := range cyclers {
			i := (round + k) % len(cyclers)
			runtime.ReadMemStats(&before)
			start := time.Now()
			for n := range cyclesPerBatch {
				runs[i](b, paths[i], n)
			}
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			nsPerCycle[i] = append(nsPerCycle[i], float64(elapsed.Nanoseconds())/cyclesPerBatch)
			allocsPerCycle[i] = append(allocsPerCycle[i], float64(after.Mallocs-before.Mallocs)/cyclesPerBatch)
		}
	}
	for i, c := range cyclers {
		b.ReportMetric(median(nsPerCycle[i]), c.name+"-ns/cycle")
		b.ReportMetric(median(allocsPerCycle[i]), c.name+"-allocs/cycle")
	}
	index := func(name string) int {
		return slices.IndexFunc(cyclers, func(c cycler) bool { return c.name == name })
	}
	for _, g := range ratioGoals {
		of, to := nsPerCycle[index(g.of)], nsPerCycle[index(g.to)]
		ratios := make([]float64, len(of))
		for r := range of {
			ratios[r] = of[r] / to[r]
		}
		b.ReportMetric(median(ratios), g.of+"-x-"+g.to)
	}
}

// BenchmarkCycleAlone runs one cycler b.N times and nothing else, for
// counting its system calls from outside (bench/run does, with strace).
func BenchmarkCycleAlone(b *testing.B) {
	for _, c := range cyclers {
		b.Run(c.name, func(b *testing.B) {
			run := c.setup(b)
			path := filepath.Join(b.TempDir(), "lock")
			run(b, path, 0)
			for i := 0; b.Loop(); i++ {
				run(b, path, i)
			}
		})
	}
}

func median(x []float64) float64 {
	x = slices.Clone(x)
	slices.Sort(x)
	return x[len(x)/2]
}
