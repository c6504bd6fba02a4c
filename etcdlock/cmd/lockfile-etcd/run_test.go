//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"run", "--etcd", "127.0.0.1:1", "-s", "/k", "true"}, "exclusive"},
		{[]string{"run", "--etcd", "127.0.0.1:1", "/k"}, "no COMMAND"},
		{[]string{"run", "--etcd", "127.0.0.1:1"}, "no KEY"},
		{[]string{"run", "--etcd", "127.0.0.1:1", "--cert", "c.pem", "/k", "true"}, "--cert and --key"},
		{[]string{"run", "--etcd", "127.0.0.1:1", "--user", "root", "/k", "true"}, "password"},
		{[]string{"run", "--etcd", "127.0.0.1:1", "--ttl", "1.5s", "/k", "true"}, "whole number"},
		{[]string{"run", "--etcd", "127.0.0.1:1", "/k", "-v", "true"}, "options go before KEY"},
		{[]string{"status", "--etcd", "127.0.0.1:1", "/k", "/j"}, "unexpected"},
		{[]string{"status", "--etcd", ",", "/k"}, "no endpoint"},
	} {
		r := runLockfile(t, tc.args...)
		if r.code() != exitUsage || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
			t.Errorf("lockfile %q: status %d, stderr %q; want %d saying %q",
				tc.args, r.code(), r.stderr, exitUsage, tc.says)
		}
	}
}

func TestHelp(t *testing.T) {
	r := runLockfile(t, "run", "--etcd", "127.0.0.1:1", "-h")
	for _, want := range []string{
		"usage: lockfile run --etcd", "-cacert", "-ttl", "LOCKFILE_TOKEN", "{pid}", "124",
	} {
		if r.code() != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("run --etcd -h: status %d, help lacks %q:\n%s", r.code(), want, r.stdout)
		}
	}
}

func TestRefusalNamesHolder(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	holder := startLockfile(t, "run", "--etcd", server.addr, "-t", "web-1;{pid}", key,
		"sh", "-c", "echo held; exec sleep 1000")
	if line := holder.next(t, 10*time.Second); line != "held" {
		t.Fatalf("holder said %q", line)
	}
	want := fmt.Sprintf("web-1;%d", holder.cmd.Process.Pid) // {pid} is lockfile's
	r := runLockfile(t, "run", "--etcd", server.addr, key, "echo", "ran")
	if r.code() != 1 || r.stdout != "" || !strings.Contains(r.stderr, "held by "+want) {
		t.Errorf("refused run: status %d, stdout %q, stderr %q; want 1 naming %s",
			r.code(), r.stdout, r.stderr, want)
	}
	r = runLockfile(t, "run", "--etcd", server.addr, "-E", "75", "-w", "0.3", key, "echo", "ran")
	if r.code() != 75 || !strings.Contains(r.stderr, "still held after 300ms by "+want) {
		t.Errorf("refused run -E 75 -w 0.3: status %d, stderr %q", r.code(), r.stderr)
	}
	r = runLockfile(t, "status", "--etcd", server.addr, key)
	if r.code() != 1 || r.stdout != want+"\n" {
		t.Errorf("status of a held lock: %d %q, want 1 %q", r.code(), r.stdout, want+"\n")
	}
	holder.cmd.Process.Signal(syscall.SIGTERM)
	holder.wait(t, 5*time.Second)
	r = runLockfile(t, "status", "--etcd", server.addr, key)
	if r.code() != 0 || r.stdout != "free\n" {
		t.Errorf("status of a released lock: %d %q, want 0 \"free\\n\"", r.code(), r.stdout)
	}
}

func TestExitStatusPassesThrough(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	for _, code := range []int{0, 1, 7, 124, 125} {
		r := runLockfile(t, "run", "--etcd", server.addr, key, "sh", "-c", "exit "+strconv.Itoa(code))
		if !r.status.Exited() || r.code() != code {
			t.Errorf("COMMAND exit %d: lockfile ended with %v (stderr %q)", code, r.status, r.stderr)
		}
	}
	r := runLockfile(t, "run", "--etcd", server.addr, key, "no-such-command-here")
	if r.code() != exitNotFound {
		t.Errorf("missing COMMAND: status %d, want %d", r.code(), exitNotFound)
	}
}

func TestTokenGrowsFromHolderToHolder(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	var last int64
	for range 3 {
		r := runLockfile(t, "run", "--etcd", server.addr, key,
			"sh", "-c", `echo "$LOCKFILE_TOKEN $LOCKFILE_KEY"`)
		tokenText, gotKey, _ := strings.Cut(strings.TrimSpace(r.stdout), " ")
		token, err := strconv.ParseInt(tokenText, 10, 64)
		if r.code() != 0 || err != nil || gotKey != key {
			t.Fatalf("COMMAND saw %q (status %d, stderr %q), want a decimal token and %s",
				r.stdout, r.code(), r.stderr, key)
		}
		if token <= last {
			t.Errorf("token %d after %d: it must grow", token, last)
		}
		last = token
	}
}

// TestExclusion runs three contenders that each take the lock 100 times
// and increment a counter under it, with a pause between its read and its
// write that lets another contender's increment be lost if they overlap.
func TestExclusion(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	counter := filepath.Join(t.TempDir(), "counter")
	if err := os.WriteFile(counter, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const contenders, rounds = 3, 100
	script := fmt.Sprintf(`i=0
while [ $i -lt %d ]; do
	lockfile run --etcd %s --ttl 5 -w inf %s \
		sh -c 'n=$(cat "$1"); sleep 0.001; echo $((n + 1)) > "$1"' sh %s || exit 1
	i=$((i + 1))
done`, rounds, server.addr, key, counter)
	var wg sync.WaitGroup
	errs := make(chan error, contenders)
	for range contenders {
		wg.Go(func() {
			cmd := lockfileCmd()
			cmd.Path, cmd.Args = "/bin/sh", []string{"sh", "-c", script}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("contender: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(counter)
	if got := strings.TrimSpace(string(data)); got != strconv.Itoa(contenders*rounds) {
		t.Fatalf("counter = %s after %d increments under the lock", got, contenders*rounds)
	}
}

// TestStatusOfHolderThatWroteNothing shows an empty holder as the file
// lock's status does: an empty line, status 1, a note on stderr.
func TestStatusOfHolderThatWroteNothing(t *testing.T) {
	needEtcd(t)
	key := testKey(t)
	holder := startLockfile(t, "run", "--etcd", server.addr, "-t", "", key,
		"sh", "-c", "echo held; exec sleep 1000")
	if line := holder.next(t, 10*time.Second); line != "held" {
		t.Fatalf("holder said %q", line)
	}
	r := runLockfile(t, "status", "--etcd", server.addr, key)
	if r.code() != 1 || r.stdout != "\n" || !strings.Contains(r.stderr, "no content") {
		t.Errorf("status: %d, stdout %q, stderr %q; want 1, an empty line, a note", r.code(),
			r.stdout, r.stderr)
	}
}
