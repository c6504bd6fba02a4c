// Command lockfile-etcd is the etcd side of the lockfile command: lockfile
// runs it for "lockfile run --etcd" and "lockfile status --etcd", which
// take and read the locks of package etcdlock.
//
// It is a program of its own so that lockfile, which links no etcd client,
// starts as fast as it did. Install it beside lockfile or on PATH:
//
//	cd etcdlock && go install ./cmd/lockfile-etcd
//
// Usage:
//
//	lockfile run --etcd ENDPOINTS [flags] KEY [--] COMMAND [ARG...]
//	lockfile status --etcd ENDPOINTS [flags] KEY
//
// Run "lockfile run --etcd ENDPOINTS -h" for the rest.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golockfile/lockfile/etcdlock"
	"github.com/golockfile/lockfile/internal/cli"
	"github.com/golockfile/lockfile/internal/printable"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Exit statuses of lockfile's own, those of the file lock and one more.
const (
	exitUsage    = 2
	exitLost     = 124 // the lock was lost, and COMMAND stopped
	exitFailed   = 125 // lockfile itself failed, e.g. could not reach etcd
	exitNoExec   = 126 // COMMAND was found but could not be executed
	exitNotFound = 127 // COMMAND was not found
)

const runHelp = `
Take the etcd lock KEY, the lock of the Go package
github.com/golockfile/lockfile/etcdlock and of etcd's concurrency.Mutex,
write the expanded TEMPLATE as the holder, and run COMMAND while holding
it. Options go before KEY; "--" before COMMAND is needed only if COMMAND
starts with "-". If the lock is held, name the holder on standard error
and exit with status CODE, without running COMMAND.

Options:
%s
-s is refused: etcd locks are exclusive.

COMMAND runs as lockfile's child, which keeps the lock's lease alive, in a
process group of its own that is the terminal's foreground group if
lockfile's was. Its environment has LOCKFILE_KEY, the key, and
LOCKFILE_TOKEN, the lock's fencing token in decimal: it grows from holder
to holder, so a resource that refuses a token lower than the greatest it
has seen turns away a holder that lost the lock. {pid} is lockfile's own
process id, COMMAND's parent, which holds the lock: the holder is written
before COMMAND starts. The lock is released when COMMAND exits; processes
it leaves running do not hold it.

Signals sent to lockfile (HUP, INT, TERM, QUIT, USR1, USR2, WINCH and the
others that end a program or that a terminal sends) are passed to COMMAND,
and lockfile exits with COMMAND's status, or dies of the signal that
killed COMMAND. Signals ignored when lockfile starts (SIGHUP, SIGINT and
with it SIGQUIT) stay ignored. While lockfile waits for the lock, a signal
that would end COMMAND ends lockfile in the same way, and COMMAND is not
run.

If the lock is lost while COMMAND runs (etcd unreachable for longer than
the TTL allows, the lease revoked, the key deleted), COMMAND's process
group gets SIGTERM, then SIGKILL, timed by lockfile's clock so that the
group is dead before etcd can let the lease expire, and lockfile exits
with status 124. This holds while the clocks of lockfile's host and of
etcd run at the same rate; a process that is paused (SIGSTOP, a frozen
VM) may still act after it, so a resource must check LOCKFILE_TOKEN.
Processes that leave COMMAND's process group (setsid, setpgid) are not
stopped.

If lockfile itself is killed, a guardian process it starts, outside
COMMAND's group, kills the group with SIGKILL at once, before the lease can
expire. If lockfile is killed while COMMAND is the terminal's foreground
group, the terminal stays with that group.

Exit status:
  CODE    the lock is held (with -w: still held when the wait ended)
  2       usage error, COMMAND not run
  124     the lock was lost while COMMAND ran, and COMMAND was stopped
  125     lockfile failed, e.g. it could not reach etcd
  126     COMMAND was found but cannot be executed
  127     COMMAND was not found
  other   COMMAND's own: its exit status, or its death by a signal
`

const statusHelp = `
Say whether the etcd lock KEY is held, without taking it: print the
holder's content (such as 8244 or 8244;web-1) and exit with status 1, or
print "free" and exit with status 0. An empty holder prints an empty line,
and a note on standard error.

Options:
%s
Exit status:
  0       the lock is free
  1       the lock is held
  2       usage error
  125     lockfile failed, e.g. it could not reach etcd
`

func main() {
	if os.Args[0] == guardianName {
		os.Exit(guard())
	}
	os.Exit(etcdMain(os.Args[1:]))
}

func etcdMain(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "run":
			return run(args[1:])
		case "status":
			return status(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "lockfile-etcd: run me as 'lockfile run --etcd ...' or 'lockfile status "+
		"--etcd ...', or with those arguments\n")
	return exitUsage
}

// etcdConfig is what the flags that reach etcd set, named as etcdctl names
// them.
type etcdConfig struct {
	endpoints            []string
	cacert, cert, key    string
	user, password       string
	userGiven, passGiven bool
	dialTimeout, timeout time.Duration
}

func etcdFlags(flags *flag.FlagSet, c *etcdConfig) {
	*c = etcdConfig{dialTimeout: 5 * time.Second, timeout: 5 * time.Second}
	flags.Func("etcd", "reach etcd at `ENDPOINTS`, comma-separated, as etcdctl's\n"+
		"--endpoints (127.0.0.1:2379, https://a:2379,https://b:2379)", func(s string) error {
		c.endpoints = nil
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				c.endpoints = append(c.endpoints, e)
			}
		}
		if len(c.endpoints) == 0 {
			return errors.New("no endpoint")
		}
		return nil
	})
	flags.StringVar(&c.cacert, "cacert", "", "verify etcd's certificate with the CA bundle in `FILE`")
	flags.StringVar(&c.cert, "cert", "", "identify with the TLS certificate in `FILE`")
	flags.StringVar(&c.key, "key", "", "identify with the TLS key in `FILE`")
	flags.Func("user", "authenticate as `NAME[:PASSWORD]`", func(s string) error {
		c.user, c.userGiven = s, true
		if name, pass, ok := strings.Cut(s, ":"); ok {
			c.user, c.password, c.passGiven = name, pass, true
		}
		return nil
	})
	flags.Func("password", "the `PASSWORD` of --user, if it has no colon", func(s string) error {
		c.password, c.passGiven = s, true
		return nil
	})
}

// check says what is missing or inconsistent in c.
func (c *etcdConfig) check() error {
	switch {
	case len(c.endpoints) == 0:
		return errors.New("no --etcd ENDPOINTS given")
	case (c.cert == "") != (c.key == ""):
		return errors.New("--cert and --key go together")
	case c.userGiven && !c.passGiven:
		return errors.New("--user without a password: give NAME:PASSWORD, or --password")
	case c.passGiven && !c.userGiven:
		return errors.New("--password without --user")
	}
	return nil
}

// client returns a client of the cluster that c names. Like etcdctl, it
// dials TLS when a TLS flag is given or an endpoint says https.
func (c *etcdConfig) client() (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   c.endpoints,
		DialTimeout: c.dialTimeout,
		Username:    c.user,
		Password:    c.password,
		Logger:      zap.NewNop(),
	}
	if c.cacert != "" || c.cert != "" {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, err
		}
		cfg.TLS.RootCAs = x509.NewCertPool()
		if !cfg.TLS.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", c.cacert)
		}
	}
	if c.cert != "" {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return nil, err
		}
		cfg.TLS.Certificates = []tls.Certificate{pair}
	}
	return clientv3.New(cfg)
}

// runConfig is what run's flags set.
type runConfig struct {
	etcd     etcdConfig
	wait     time.Duration
	forever  bool
	template string
	heldCode int
	verbose  bool
	shared   bool
	ttl      time.Duration
}

func runFlags(c *runConfig) *flag.FlagSet {
	*c = runConfig{template: "{pid}", heldCode: 1, ttl: etcdlock.DefaultTTL}
	flags := flag.NewFlagSet("run", flag.ContinueOnError)
	etcdFlags(flags, &c.etcd)
	flags.Func("E", "exit with status `CODE`, 0 to 255, if the lock is held (default 1)",
		func(s string) (err error) {
			c.heldCode, err = cli.ExitStatus(s)
			return err
		})
	flags.Func("t", "write `TEMPLATE` as the holder: {pid} is lockfile's process id,\n"+
		"{hostname} the host name, {{ and }} are braces (default \"{pid}\")", func(s string) error {
		if err := cli.CheckTemplate(s); err != nil {
			return err
		}
		c.template = s
		return nil
	})
	flags.BoolVar(&c.shared, "s", false, "refused: etcd locks are exclusive")
	flags.Func("ttl", "keep the lock on a lease of `DURATION`, whole seconds (default 10s):\n"+
		"how soon the lock is free after lockfile dies or loses etcd", func(s string) error {
		d, err := time.ParseDuration(s)
		if n, nerr := strconv.Atoi(s); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil || d < time.Second || d%time.Second != 0 {
			return errors.New("not a whole number of seconds, at least 1 (10, 10s, 1m)")
		}
		c.ttl = d
		return nil
	})
	flags.BoolVar(&c.verbose, "v", false,
		"say on standard error whom it waits for, and how long it waited")
	flags.Func("w", "wait up to `DURATION` for a held lock: seconds (10, .5), a Go\n"+
		"duration (1m30s), or inf for no limit (default 0: do not wait)", func(s string) (err error) {
		c.wait, c.forever, err = parseWait(s)
		return err
	})
	return flags
}

// parseWait reads -w's value: a number of seconds, a Go duration, or inf.
func parseWait(s string) (wait time.Duration, forever bool, err error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case math.IsNaN(secs) || secs < 0:
			return 0, false, errors.New("not a wait; give seconds (10, .5), a duration (1m30s) or inf")
		case math.IsInf(secs, 1):
			return 0, true, nil
		case secs*float64(time.Second) >= math.MaxInt64:
			return 0, false, errors.New("longer than the longest wait; use inf to wait without limit")
		}
		return time.Duration(math.Round(secs * float64(time.Second))), false, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false, errors.New("not a wait; give seconds (10, .5), a duration (1m30s) or inf")
	}
	return d, false, nil
}

// synopsis is a command's usage line.
func synopsis(name string) string {
	if name == "run" {
		return "lockfile run --etcd ENDPOINTS [--cacert FILE] [--cert FILE --key FILE]\n" +
			"         [--user NAME[:PASSWORD]] [--ttl DURATION] [-E CODE] [-t TEMPLATE] [-v]\n" +
			"         [-w DURATION] KEY [--] COMMAND [ARG...]"
	}
	return "lockfile status --etcd ENDPOINTS [--cacert FILE] [--cert FILE --key FILE]\n" +
		"         [--user NAME[:PASSWORD]] KEY"
}

func usageError(name, msg string) int {
	fmt.Fprintf(os.Stderr, "lockfile %s: %s\nusage: %s\n", name, msg, synopsis(name))
	fmt.Fprintf(os.Stderr, "Run 'lockfile %s --etcd ENDPOINTS -h' for help.\n", name)
	return exitUsage
}

// parseFlags parses a command's flags; -h prints the help on stdout.
func parseFlags(flags *flag.FlagSet, args []string, text string) (exit int, ok bool) {
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	err := flags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		var defaults strings.Builder
		flags.SetOutput(&defaults)
		flags.PrintDefaults()
		fmt.Print("usage: " + synopsis(flags.Name()) + "\n" +
			strings.Replace(text, "%s", defaults.String(), 1))
		return 0, false
	case err != nil:
		return usageError(flags.Name(), err.Error()), false
	}
	return 0, true
}

func status(args []string) int {
	var c etcdConfig
	flags := flag.NewFlagSet("status", flag.ContinueOnError)
	etcdFlags(flags, &c)
	if exit, ok := parseFlags(flags, args, statusHelp); !ok {
		return exit
	}
	if err := c.check(); err != nil {
		return usageError("status", err.Error())
	}
	switch args = flags.Args(); len(args) {
	case 0:
		return usageError("status", "no KEY given")
	case 1:
	default:
		return usageError("status", fmt.Sprintf("unexpected %q after KEY", args[1]))
	}
	key := args[0]
	client, err := c.client()
	if err != nil {
		return failed(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	holder, held, err := readHolder(ctx, client, key)
	switch {
	case err != nil:
		return failed(fmt.Errorf("reading %s: %w", key, err))
	case !held:
		fmt.Println("free")
		return 0
	}
	fmt.Println(printable.Escape(holder))
	if holder == "" {
		fmt.Fprintf(os.Stderr, "lockfile: %s is held; the holder wrote no content\n", key)
	}
	return 1
}

// readHolder reads the lock's holder as etcdlock names it: the content of
// the first key under key+"/", its first line, trimmed.
func readHolder(ctx context.Context, client *clientv3.Client,
	key string) (holder string, held bool, err error) {
	resp, err := client.Get(ctx, key+"/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false, err
	}
	first, _, _ := strings.Cut(string(resp.Kvs[0].Value), "\n")
	return strings.TrimSpace(first), true, nil
}

// failed reports an error of lockfile's own.
func failed(err error) int {
	fmt.Fprintf(os.Stderr, "lockfile: %v\n", err)
	return exitFailed
}
