//go:build unix

package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golockfile/lockfile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// runHelper is the child side of the multi-process tests. It reports on
// stdout, one line per event, and runs until its stdin is closed.
func runHelper(mode string, args []string) int {
	report := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	client, err := newClient(strings.Split(args[0], ",")...)
	if err != nil {
		report("error %v", err)
		return 1
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	switch mode {
	case "hold": // endpoints key template ttl
		ttl, _ := time.ParseDuration(args[3])
		l, err := New(ctx, client, args[1], WithContentTemplate(args[2]), WithTTL(ttl))
		if err != nil {
			report("error %v", err)
			return 1
		}
		report("locked %d %s", l.Token(), l.Content())
		<-stdinClosed
		if err := l.Close(); err != nil {
			report("error %v", err)
			return 1
		}
		return 0
	case "try": // endpoints key
		l, err := New(ctx, client, args[1])
		var lockErr *lockfile.LockError
		switch {
		case err == nil:
			report("ok %d", l.Token())
			l.Close()
		case errors.As(err, &lockErr) && errors.Is(err, lockfile.ErrLocked):
			report("locked %s", lockErr.Holder)
		default:
			report("error %v", err)
			return 1
		}
		return 0
	case "cycle": // endpoints key ttl minHold maxHold resource
		ttl, _ := time.ParseDuration(args[2])
		minHold, _ := time.ParseDuration(args[3])
		maxHold, _ := time.ParseDuration(args[4])
		return cycle(client, args[1], ttl, minHold, maxHold, resource(args[5]), stdinClosed, report)
	}
	report("error unknown helper %q", mode)
	return 2
}

// cycle takes the lock, works under it for minHold to maxHold and releases
// it, over and over, until stop is closed. Each round reports
//
//	held token acquiredAt releasedAt lost overlaps stale
//
// with the times in Unix nanoseconds: acquiredAt right after Acquire
// returned, releasedAt right before Close. The work is fenced: on entry
// the holder checks its token against the resource and marks the resource
// occupied, and on exit it checks that no one else came in meanwhile. A
// holder stops its work as soon as Lost is closed, as the package asks.
func cycle(client *clientv3.Client, key string, ttl, minHold, maxHold time.Duration, res resource, stop <-chan struct{}, report func(string, ...any)) int {
	for {
		select {
		case <-stop:
			return 0
		default:
		}
		hold := minHold + rand.N(maxHold-minHold+1)
		if code, done := round(client, key, ttl, hold, res, stop, report); done {
			return code
		}
	}
}

// round is one round of cycle; done is true when cycle should return code.
func round(client *clientv3.Client, key string, ttl, hold time.Duration, res resource, stop <-chan struct{}, report func(string, ...any)) (code int, done bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	l, err := Acquire(ctx, client, key, WithTTL(ttl))
	acquiredAt := time.Now().UnixNano()
	if errors.Is(err, context.Canceled) {
		return 0, true
	}
	if err != nil {
		report("error %v", err)
		time.Sleep(50 * time.Millisecond)
		return 0, false
	}
	overlaps, stale, err := res.enter(l.Token())
	if err != nil {
		report("error resource: %v", err)
		return 1, true
	}
	lost := 0
	select {
	case <-time.After(hold):
	case <-l.Lost():
		lost = 1
	}
	more, err := res.exit(l.Token())
	if err != nil {
		report("error resource: %v", err)
		return 1, true
	}
	releasedAt := time.Now().UnixNano()
	switch err := l.Close(); {
	case errors.Is(err, ErrLost):
		lost = 1
	case err != nil:
		report("error close: %v", err)
	}
	report("held %d %d %d %d %d %d", l.Token(), acquiredAt, releasedAt, lost, overlaps+more, stale)
	return 0, false
}

// resource stands for what a lock guards, with the checks a fenced
// resource makes. Its state is a file holding the greatest token seen and
// the token of the holder inside (0 for none), read and written under a
// file lock of package lockfile, which makes each check atomic among the
// processes of one host.
type resource string

func (r resource) update(fn func(max, inside int64) (int64, int64)) error {
	l, err := lockfile.AcquireSimple(context.Background(), string(r)+".lock")
	if err != nil {
		return err
	}
	defer l.Close()
	var max, inside int64
	if data, err := os.ReadFile(string(r)); err == nil {
		fmt.Sscan(string(data), &max, &inside)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	max, inside = fn(max, inside)
	return os.WriteFile(string(r), []byte(strconv.FormatInt(max, 10)+" "+strconv.FormatInt(inside, 10)), 0o644)
}

// enter counts an overlap if another holder is inside, and a stale token if
// token is not greater than every token seen before.
func (r resource) enter(token int64) (overlaps, stale int, err error) {
	err = r.update(func(max, inside int64) (int64, int64) {
		if inside != 0 {
			overlaps++
		}
		if token <= max {
			stale++
			return max, token
		}
		return token, token
	})
	return overlaps, stale, err
}

// exit counts an overlap if someone else entered while token was inside.
func (r resource) exit(token int64) (overlaps int, err error) {
	err = r.update(func(max, inside int64) (int64, int64) {
		if inside != token {
			overlaps++
			return max, inside
		}
		return max, 0
	})
	return overlaps, err
}
