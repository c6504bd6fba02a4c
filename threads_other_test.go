//go:build !linux && (unix || windows)

package lockfile

import "testing"

// Outside Linux there is no /proc to count threads with, and under Wine it
// would show Wine's own; the tests that use these counts check descriptors
// and goroutines there.

func osThreads(t *testing.T) int            { return 0 }
func threadsBlockedInLock(t *testing.T) int { return 0 }
