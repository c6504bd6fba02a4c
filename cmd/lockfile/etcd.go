package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// etcdProgram runs the etcd side of run and status. It is a program of its
// own, in the etcdlock module, so that lockfile links no etcd client: one
// would slow every start of lockfile, and every user of the library module
// would download it.
const etcdProgram = "lockfile-etcd"

// etcdInstall says how to install etcdProgram.
const etcdInstall = "install it beside lockfile or on PATH, from a checkout with\n" +
	"  cd etcdlock && go install ./cmd/lockfile-etcd\n" +
	"or with\n" +
	"  go install github.com/golockfile/lockfile/etcdlock/cmd/lockfile-etcd@latest"

// valueFlags are the flags of run and status, file and etcd, that take a
// value as the next argument.
var valueFlags = map[string]bool{
	"E": true, "t": true, "w": true,
	"etcd": true, "cacert": true, "cert": true, "key": true, "user": true, "password": true,
	"ttl": true,
}

// wantsEtcd reports whether the options of run or status, those before the
// first operand, include --etcd.
func wantsEtcd(args []string) bool {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" || arg == "-" || !strings.HasPrefix(arg, "-") {
			return false
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		if name == "etcd" {
			return true
		}
		if valueFlags[name] && !hasValue {
			i++
		}
	}
	return false
}

// findEtcdProgram returns the path of etcdProgram: the one beside the
// running lockfile, or else the first on PATH.
func findEtcdProgram() (string, error) {
	name := etcdProgram
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), name)
		if info, err := os.Stat(beside); err == nil && !info.IsDir() {
			return beside, nil
		}
	}
	return exec.LookPath(etcdProgram)
}

// runEtcd runs lockfile's arguments, such as "run --etcd ENDPOINTS KEY
// COMMAND", with etcdProgram, and returns only if that fails.
func runEtcd(args []string) int {
	path, err := findEtcdProgram()
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "lockfile: --etcd needs the program %s, which is neither beside "+
			"lockfile nor on PATH; %s\n", etcdProgram, etcdInstall)
		return exitFailed
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lockfile: --etcd: %v\n", err)
		return exitFailed
	}
	return execEtcd(path, append([]string{etcdProgram}, args...))
}
