//go:build unix && !linux

package main

import "syscall"

// etcdAttr: this system has no parent-death signal; the test stops etcd.
func etcdAttr() *syscall.SysProcAttr { return nil }
