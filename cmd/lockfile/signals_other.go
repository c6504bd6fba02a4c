//go:build js || plan9

package main

import "os"

// These platforms have no file locks (every lock fails with
// lockfile.ErrUnsupported) and no Unix signals; this keeps the command
// compiling there, as the package does.
var forwarded = []os.Signal{os.Interrupt}

func killedBy(*os.ProcessState) (int, bool) { return 0, false }
