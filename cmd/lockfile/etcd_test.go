//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyLockfile copies the lockfile under test into a directory of its own,
// where lockfile-etcd is looked for beside it.
func copyLockfile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copied := filepath.Join(dir, "lockfile")
	if err := os.WriteFile(copied, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return copied
}

// writeFakeEtcd puts a script named lockfile-etcd beside lockfile lf.
func writeFakeEtcd(t *testing.T, lf, script string) {
	t.Helper()
	path := filepath.Join(filepath.Dir(lf), "lockfile-etcd")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestEtcdArgumentsGoToLockfileEtcd(t *testing.T) {
	lf := copyLockfile(t)
	fake := "#!/bin/sh\nprintf '%s|' \"$0\" \"$@\"\nexit 42\n"
	writeFakeEtcd(t, lf, fake)
	for _, args := range [][]string{
		{"run", "--etcd", "a:1,b:2", "-w", "inf", "-t", "x", "/k", "sh", "-c", "x"},
		{"run", "-t", "--etcd", "-etcd=a:1", "/k", "true"},
		{"status", "-etcd", "a:1", "/k"},
	} {
		cmd := exec.Command(lf, args...)
		out, err := cmd.Output()
		if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 42 {
			t.Fatalf("lockfile %q: %v, want lockfile-etcd's exit status 42", args, err)
		}
		want := filepath.Join(filepath.Dir(lf), "lockfile-etcd") + "|" + strings.Join(args, "|") + "|"
		if string(out) != want {
			t.Errorf("lockfile %q ran %q, want %q", args, out, want)
		}
	}
}

func TestEtcdFlagAfterOperandsIsNotEtcd(t *testing.T) {
	lf := copyLockfile(t)
	fake := "#!/bin/sh\nexit 42\n"
	writeFakeEtcd(t, lf, fake)
	path := lockPath(t)
	out, err := exec.Command(lf, "run", "-t", "x", path, "echo", "--etcd").Output()
	if err != nil || string(out) != "--etcd\n" {
		t.Fatalf("lockfile run PATH echo --etcd: %q, %v; want the file lock and echo's output", out, err)
	}
}

func TestMissingLockfileEtcdSaysHowToInstall(t *testing.T) {
	lf := copyLockfile(t)
	cmd := exec.Command(lf, "run", "--etcd", "127.0.0.1:1", "/k", "true")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != exitFailed {
		t.Fatalf("lockfile run --etcd without lockfile-etcd: %v, want exit status %d", err, exitFailed)
	}
	if !strings.Contains(stderr.String(), "go install ./cmd/lockfile-etcd") {
		t.Errorf("stderr %q does not say how to install lockfile-etcd", stderr.String())
	}
}
