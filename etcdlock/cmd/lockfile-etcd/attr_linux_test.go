package main

import "syscall"

// etcdAttr makes the etcd server die with the test, even one that times out.
func etcdAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
