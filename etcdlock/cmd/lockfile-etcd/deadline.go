package main

import (
	"time"
)

// stopLeads returns how long before the lease's deadline COMMAND's group
// gets SIGKILL, and SIGTERM: SIGKILL early enough for the group to be dead
// by the deadline, SIGTERM early enough to leave COMMAND time to end
// cleanly.
func stopLeads(ttl time.Duration) (kill, term time.Duration) {
	kill = min(max(ttl/10, 200*time.Millisecond), time.Second)
	return kill, kill + min(max(ttl/5, 300*time.Millisecond), 3*time.Second)
}
