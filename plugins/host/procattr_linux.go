package host

import "syscall"

// procAttr: the plugin gets its own process group (a kill reaches its
// children too, a Ctrl-C meant for the agent does not reach it directly)
// and is killed by the kernel if the agent dies without stopping it
// (kill -9, a crash): nothing else would ever stop an orphaned plugin.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
