package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/golockfile/lockfile"
	"github.com/golockfile/lockfile/etcdlock"
	"github.com/golockfile/lockfile/internal/printable"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func run(args []string) int {
	var c runConfig
	flags := runFlags(&c)
	if exit, ok := parseFlags(flags, args, runHelp); !ok {
		return exit
	}
	if c.shared {
		return usageError("run", "-s with --etcd: etcd locks are exclusive, none is shared")
	}
	if err := c.etcd.check(); err != nil {
		return usageError("run", err.Error())
	}
	args = flags.Args()
	if len(args) == 0 {
		return usageError("run", "no KEY given")
	}
	key, argv := args[0], args[1:]
	switch {
	case len(argv) > 0 && argv[0] == "--":
		argv = argv[1:]
	case len(argv) > 0 && len(argv[0]) > 1 && argv[0][0] == '-':
		return usageError("run", fmt.Sprintf(
			"%s after KEY: options go before KEY (and -- before a COMMAND that starts with -)", argv[0]))
	}
	if len(argv) == 0 {
		return usageError("run", "no COMMAND given")
	}
	// A COMMAND that is missing or not executable is reported before etcd
	// is reached.
	command, err := exec.LookPath(argv[0])
	if err != nil {
		return commandFailed(argv[0], err)
	}

	signals := catchSignals()
	client, err := c.etcd.client()
	if err != nil {
		return failed(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	taken := make(chan lockResult, 1)
	go func() {
		l, err := takeLock(ctx, client, key, c)
		taken <- lockResult{l, err}
	}()
	var r lockResult
wait:
	for {
		select {
		case sig := <-signals:
			if !endsProgram(sig) {
				continue
			}
			cancel()
			if r = <-taken; r.lock != nil {
				r.lock.Close()
			}
			client.Close()
			return dieOf(sig)
		case r = <-taken:
			break wait
		}
	}
	var lockErr *lockfile.LockError
	switch {
	case errors.As(r.err, &lockErr):
		client.Close()
		fmt.Fprintf(os.Stderr, "lockfile: %s is %s\n", key, heldBy(lockErr, c.wait))
		return c.heldCode
	case r.err != nil:
		client.Close()
		return failed(r.err)
	}
	return runHeld(client, r.lock, c, command, argv, signals)
}

type lockResult struct {
	lock *etcdlock.Lock
	err  error
}

// takeLock takes the lock without waiting, or waits for it as c says.
func takeLock(ctx context.Context, client *clientv3.Client, key string,
	c runConfig) (*etcdlock.Lock, error) {
	began := time.Now()
	nowCtx, cancel := context.WithTimeout(ctx, c.etcd.timeout)
	l, err := etcdlock.New(nowCtx, client, key, c.lockOptions()...)
	cancel()
	var lockErr *lockfile.LockError
	if errors.As(err, &lockErr) && (c.wait > 0 || c.forever) {
		l, err = waitLock(ctx, client, key, c, began, lockErr)
	}
	if err == nil && c.verbose {
		fmt.Fprintf(os.Stderr, "lockfile: locked %s after %v\n",
			key, time.Since(began).Round(time.Millisecond))
	}
	return l, err
}

// waitLock waits for the lock that New found held by lockErr's holder.
func waitLock(ctx context.Context, client *clientv3.Client, key string, c runConfig,
	began time.Time, lockErr *lockfile.LockError) (*etcdlock.Lock, error) {
	if c.verbose {
		limit := ""
		if !c.forever {
			limit = " up to " + c.wait.String()
		}
		fmt.Fprintf(os.Stderr, "lockfile: %s is %s; waiting%s\n", key, heldBy(lockErr, 0), limit)
	}
	waitCtx := ctx
	if !c.forever {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, c.wait-time.Since(began))
		defer cancel()
	}
	return etcdlock.Acquire(waitCtx, client, key, c.lockOptions()...)
}

func (c runConfig) lockOptions() []etcdlock.Option {
	return []etcdlock.Option{etcdlock.WithContentTemplate(c.template), etcdlock.WithTTL(c.ttl)}
}

// heldBy says who holds the lock, after a wait of the given length.
func heldBy(lockErr *lockfile.LockError, waited time.Duration) string {
	state := "held"
	if waited > 0 {
		state = "still held after " + waited.String()
	}
	if lockErr.Holder == "" {
		return state + "; the holder wrote no content"
	}
	return state + " by " + printable.Escape(lockErr.Holder)
}

// commandEnv is COMMAND's environment: lockfile's, with the lock's key and
// fencing token.
func commandEnv(l *etcdlock.Lock) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOCKFILE_KEY=") && !strings.HasPrefix(kv, "LOCKFILE_TOKEN=") {
			env = append(env, kv)
		}
	}
	return append(env, "LOCKFILE_KEY="+l.Key(), "LOCKFILE_TOKEN="+strconv.FormatInt(l.Token(), 10))
}

// commandFailed reports a COMMAND that could not be started, with the
// shell's statuses: 127 when there is no such file, 126 when there is one
// that cannot be executed.
func commandFailed(name string, err error) int {
	var execErr *exec.Error
	var pathErr *fs.PathError
	switch {
	case errors.As(err, &execErr):
		err = execErr.Err
	case errors.As(err, &pathErr):
		err = pathErr.Err
	}
	fmt.Fprintf(os.Stderr, "lockfile: %s: %v\n", name, err)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitNotFound
	}
	return exitNoExec
}
