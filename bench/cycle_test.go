//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package bench

import (
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/internal/template"
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
			text, err := template.Expand(c)
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
	// The same with the host name, looked up by every New.
	{"New-hostname", func(*testing.B) func(*testing.B, string, int) {
		opts := [2]lockfile.Option{lockfile.WithContentTemplate(contents[0] + ";{hostname}"), lockfile.WithContentTemplate(contents[1] + ";{hostname}")}
		return func(b *testing.B, path string, i int) {
			l, err := lockfile.New(path, opts[i%2])
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
		}
	}},
	// A shared lock, and the raw calls it makes.
	{"raw-shared", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
				b.Fatal(err)
			}
			rawUnlock(fd)
		}
	}},
	{"NewShared", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			l, err := lockfile.NewShared(path)
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
		}
	}},
	// NewSimple in a process that holds a lock on another file. Where locks
	// belong to the process (-tags lockfile_fcntl, AIX, Solaris), the next
	// lock is looked up in the table; with flock it costs nothing more.
	// The other lock is taken at the start of each batch and released at
	// its end, so that the cyclers beside it run while no lock is held.
	{"NewSimple-holding", func(b *testing.B) func(*testing.B, string, int) {
		otherPath := filepath.Join(b.TempDir(), "other.lock")
		var other *lockfile.SimpleLockFile
		b.Cleanup(func() {
			if other != nil {
				other.Close()
			}
		})
		return func(b *testing.B, path string, n int) {
			if n%cyclesPerBatch == 0 && other == nil {
				var err error
				if other, err = lockfile.NewSimple(otherPath); err != nil {
					b.Fatal(err)
				}
			}
			l, err := lockfile.NewSimple(path)
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
			if n%cyclesPerBatch == cyclesPerBatch-1 {
				other.Close()
				other = nil
			}
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

// A ratio compares one cycler's time per cycle with another's.
type ratio struct{ of, to string }

// The ratios that bench/run states goals in.
var cycleRatios = []ratio{
	{"NewSimple", "raw"},
	{"NewSimple", "gofrs-flock"},
	{"New", "raw-content"},
	{"NewShared", "raw-shared"},
	{"NewSimple-holding", "NewSimple"},
}

// cyclesPerBatch is how many cycles each cycler runs in a row, timed as one.
const cyclesPerBatch = 200

// BenchmarkCycle runs every cycler for a batch per round, in an order that
// rotates from round to round, and reports each one's median ns and
// allocations per cycle, and the ratios the goals are stated in, each the
// median of the ratios within a round, so that the machine's ups and downs
// cancel.
func BenchmarkCycle(b *testing.B) { runCycles(b, cyclers, cycleRatios) }

// partCyclers take the bare cycle apart: the raw calls, then with each
// thing that NewSimple adds to them, and NewSimple itself.
var partCyclers = []cycler{
	cyclerNamed("raw"),
	// The raw calls with NewSimple's open: O_NOFOLLOW, and no O_CREAT
	// when the file exists.
	{"raw-nofollow", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == unix.ENOENT {
				fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
				b.Fatal(err)
			}
			rawUnlock(fd)
		}
	}},
	// The raw calls and a lock object on the heap, as NewSimple returns.
	{"raw+object", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			l := &rawLockObject{path: path, fd: rawLock(b, path), held: true}
			heldObject = l
			rawUnlock(l.fd)
		}
	}},
	// The same, released under the object's mutex, as Close does.
	{"raw+object+mutex", func(*testing.B) func(*testing.B, string, int) {
		return func(b *testing.B, path string, _ int) {
			l := &rawLockObject{path: path, fd: rawLock(b, path), held: true}
			heldObject = l
			l.close()
		}
	}},
	cyclerNamed("NewSimple"),
}

// rawLockObject is shaped like a SimpleLockFile.
type rawLockObject struct {
	path string
	mu   sync.Mutex
	fd   int
	held bool
}

// heldObject keeps the last rawLockObject, so that it is allocated on the
// heap as a SimpleLockFile is.
var heldObject *rawLockObject

func (l *rawLockObject) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		l.held = false
		rawUnlock(l.fd)
	}
}

var partRatios = []ratio{
	{"raw-nofollow", "raw"},
	{"raw+object", "raw"},
	{"raw+object+mutex", "raw"},
	{"NewSimple", "raw+object+mutex"},
	{"NewSimple", "raw"},
}

// BenchmarkCycleParts runs partCyclers as BenchmarkCycle runs cyclers, to
// show where the time NewSimple adds to the raw calls goes.
func BenchmarkCycleParts(b *testing.B) { runCycles(b, partCyclers, partRatios) }

func cyclerNamed(name string) cycler {
	return cyclers[slices.IndexFunc(cyclers, func(c cycler) bool { return c.name == name })]
}

func runCycles(b *testing.B, cyclers []cycler, ratios []ratio) {
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
	for _, r := range ratios {
		of, to := nsPerCycle[index(r.of)], nsPerCycle[index(r.to)]
		perRound := make([]float64, len(of))
		for k := range of {
			perRound[k] = of[k] / to[k]
		}
		b.ReportMetric(median(perRound), r.of+"-x-"+r.to)
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
