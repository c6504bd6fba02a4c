//go:build unix || windows

package lockfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// The child sides of the reliability tests; runHelper dispatches to them.

// runCritical takes the lock on lockPath rounds times with Acquire and does
// the critical work each time. It reports "done N", N being how many times
// it found another worker inside the critical section.
func runCritical(args []string) int {
	lockPath, counterPath, markerPath := args[0], args[1], args[2]
	rounds, err := strconv.Atoi(args[3])
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	template := WithContentTemplate("{pid} worker")
	overlaps := 0
	for range rounds {
		l, err := Acquire(context.Background(), lockPath, template)
		if err != nil {
			fmt.Printf("error %v\n", err)
			return 1
		}
		alone, err := criticalWork(counterPath, markerPath)
		if !alone {
			overlaps++
		}
		if err = errors.Join(err, l.Close()); err != nil {
			fmt.Printf("error %v\n", err)
			return 1
		}
	}
	fmt.Printf("done %d\n", overlaps)
	return 0
}

// criticalWork adds one to the number in counterPath by reading and
// rewriting it: two workers inside at once lose an increment. The marker
// file exists, created exclusively, while a worker is inside, so that an
// overlap is seen even when no increment happens to be lost.
func criticalWork(counterPath, markerPath string) (alone bool, err error) {
	marker, err := os.OpenFile(markerPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	switch {
	case err == nil:
		alone = true
		marker.Close()
		defer func() { err = errors.Join(err, os.Remove(markerPath)) }()
	case !errors.Is(err, fs.ErrExist):
		return false, err
	}
	data, err := os.ReadFile(counterPath)
	if err != nil {
		return alone, err
	}
	// Without a lock a worker can read the file between another's
	// truncation and its write; that empty read counts as 0, one more
	// way updates are lost.
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return alone, os.WriteFile(counterPath, []byte(strconv.Itoa(n+1)), 0o644)
}

// crashTemplate gives a content whose first line is the pid and whose
// second is long, so that writing it takes long enough to be killed in the
// middle of, and a torn file shows which write it was.
func crashTemplate(fill byte, size int) string {
	return "{pid}\n" + strings.Repeat(string(fill), size)
}

// runCrashCycle takes and releases the lock on path until it is killed,
// writing a long and a short content by turns. The first time, it checks that
// the file holds exactly its own content, whatever its killed predecessor
// left, and that Holder names it, and then reports "holding".
func runCrashCycle(args []string) int {
	path := args[0]
	long, err1 := strconv.Atoi(args[1])
	short, err2 := strconv.Atoi(args[2])
	if err := errors.Join(err1, err2); err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	templates := []Option{
		WithContentTemplate(crashTemplate('a', long)),
		WithContentTemplate(crashTemplate('b', short)),
	}
	for cycle := 0; ; cycle++ {
		l, err := Acquire(context.Background(), path, templates[cycle%2])
		if err != nil {
			fmt.Printf("error %v\n", err)
			return 1
		}
		if cycle == 0 {
			data, err := os.ReadFile(path)
			if want := " " + l.Content() + "\n"; err != nil || string(data) != want {
				fmt.Printf("error the file holds %d bytes, not exactly this holder's %d (%v)\n", len(data), len(want), err)
				return 1
			}
			st, err := Inspect(path)
			holder, held := st.Holder, st.Held
			if pid := strconv.Itoa(os.Getpid()); err != nil || !held || holder != pid {
				fmt.Printf("error Holder = %q, %v, %v; want %q, true\n", holder, held, err, pid)
				return 1
			}
			fmt.Println("holding")
		}
		if err := l.Close(); err != nil {
			fmt.Printf("error %v\n", err)
			return 1
		}
	}
}

// runAttempt tries NewSimple and New on path and reports, for each, the
// properties of its error the tests check: "NAME <is fs.ErrPermission>
// <is a *fs.PathError> <is ErrLocked> <message>".
func runAttempt(args []string) int {
	for _, attempt := range []struct {
		name string
		take func(string) (interface{ Close() error }, error)
	}{
		{"NewSimple", func(p string) (interface{ Close() error }, error) { return NewSimple(p) }},
		{"New", func(p string) (interface{ Close() error }, error) { return New(p) }},
	} {
		l, err := attempt.take(args[0])
		if err == nil {
			l.Close()
		}
		var pathErr *fs.PathError
		fmt.Printf("%s %t %t %t %v\n", attempt.name, errors.Is(err, fs.ErrPermission),
			errors.As(err, &pathErr), errors.Is(err, ErrLocked), err)
	}
	return 0
}
