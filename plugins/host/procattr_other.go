//go:build !linux

package host

import "syscall"

// procAttr: the plugin gets its own process group (a kill reaches its
// children too, a Ctrl-C meant for the agent does not reach it directly).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
