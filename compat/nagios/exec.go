package nagios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultOutputLimit caps the bytes kept from each of stdout and stderr.
const DefaultOutputLimit = 64 << 10

const (
	// killGrace is how long a timed-out plugin's process group has
	// between SIGTERM and SIGKILL to clean up (temp files, locks).
	killGrace = 500 * time.Millisecond
	// pipeGrace bounds reading after the plugin's group is dead: only a
	// process that left the group (setsid) can still hold the pipes.
	pipeGrace = 500 * time.Millisecond
)

// ExecResult is what running a plugin produced, before interpretation.
type ExecResult struct {
	ExitCode int            // exit status; -1 when the process did not exit normally
	Signal   syscall.Signal // the signal that killed the process, if any
	Stdout   []byte         // at most the output limit
	Stderr   []byte
	// StdoutDropped and StderrDropped count bytes read beyond the limit;
	// Truncated is their sum.
	StdoutDropped, StderrDropped int64
	Truncated                    int64
	// TimedOut: ctx was done before the plugin exited, so its whole process
	// group was killed; Cause says why (context.DeadlineExceeded, or
	// context.Canceled when the agent stops).
	TimedOut bool
	Cause    error
	// StartErr: the plugin did not start (not found, not executable, no
	// free slot under the concurrency limit before ctx ended).
	StartErr error
	// PipesHeld: a process that left the plugin's process group kept the
	// output pipes open after the plugin exited; reading was stopped.
	PipesHeld bool
	Duration  time.Duration
}

// ExecOptions tune one execution.
type ExecOptions struct {
	Env         []string // complete environment; nil means MinimalEnv()
	OutputLimit int      // bytes kept per stream; 0 means DefaultOutputLimit
	Dir         string   // working directory; "" means the agent's
}

// defaultPath is the PATH plugins see unless configured otherwise.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// MinimalEnv is the environment plugins get unless configured otherwise:
// the usual system PATH and the C locale, so output (decimal points, dates,
// messages) parses the same on every machine. Nothing of the agent's own
// environment (secrets, proxies) leaks into plugins.
func MinimalEnv() []string {
	return []string{"PATH=" + defaultPath, "LANG=C", "LC_ALL=C"}
}

// Exec runs argv (argv[0] a path, or a name looked up in the PATH of the
// plugin's environment) in its own process group until it exits or ctx is
// done, capturing stdout and stderr up to the limit. On timeout the whole
// group gets SIGTERM, then SIGKILL after a short grace. After a normal exit
// any process the plugin left behind in its group is killed too, so no
// plugin leaks children or holds the output pipes open. Exec has no
// concurrency limit; Type.Run and Type.Exec add it.
func Exec(ctx context.Context, argv []string, opts ExecOptions) (res ExecResult) {
	start := time.Now()
	res.ExitCode = -1
	defer func() { res.Duration = time.Since(start) }()
	if len(argv) == 0 || argv[0] == "" {
		res.StartErr = errors.New("empty command")
		return res
	}
	if err := ctx.Err(); err != nil {
		res.TimedOut, res.Cause = true, context.Cause(ctx)
		res.StartErr = fmt.Errorf("not started: %w", err)
		return res
	}
	limit := opts.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	env := opts.Env
	if env == nil {
		env = MinimalEnv()
	}
	path := argv[0]
	if !strings.Contains(path, "/") {
		p, err := lookPath(path, env)
		if err != nil {
			res.StartErr = err
			return res
		}
		path = p
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		res.StartErr = fmt.Errorf("stdout pipe: %w", err)
		return res
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		res.StartErr = fmt.Errorf("stderr pipe: %w", err)
		return res
	}
	// No Pdeathsig: Linux sends it when the forking *thread* exits, which
	// Go does not control, so it could kill healthy plugins. Plugins left
	// by a crashed agent die with its cgroup under systemd.
	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Dir: opts.Dir, Stdout: outW, Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	err = cmd.Start()
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without #! line: run it with the shell, as execvp(3)
		// and so Nagios do.
		cmd = &exec.Cmd{Path: "/bin/sh", Args: append([]string{"/bin/sh", path}, argv[1:]...), Env: env, Dir: opts.Dir,
			Stdout: outW, Stderr: errW, SysProcAttr: cmd.SysProcAttr}
		err = cmd.Start()
	}
	// The child has its own copies; ours must go so that EOF arrives.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		res.StartErr = err
		return res
	}
	pid := cmd.Process.Pid

	var wg sync.WaitGroup
	outBuf, errBuf := cappedBuffer{limit: limit}, cappedBuffer{limit: limit}
	wg.Add(2)
	go func() { defer wg.Done(); outBuf.readFrom(outR) }()
	go func() { defer wg.Done(); errBuf.readFrom(errR) }()

	// Wait for the exit without reaping, so that the process group ID
	// cannot be reused by an unrelated process while we signal it.
	exited := make(chan struct{})
	go func() {
		var info unix.Siginfo
		for {
			if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
				break
			}
		}
		close(exited)
	}()
	timedOut := false
	select {
	case <-exited:
	case <-ctx.Done():
		select {
		case <-exited: // it exited just as ctx ended: not a timeout
		default:
			timedOut = true
		}
	}
	if timedOut {
		res.TimedOut, res.Cause = true, context.Cause(ctx)
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(killGrace)
		select {
		case <-exited:
		case <-t.C:
		}
		t.Stop()
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	// Whatever the plugin left running in its group dies with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	deadline := time.Now().Add(pipeGrace)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	wg.Wait()
	outR.Close()
	errR.Close()
	_ = cmd.Wait() // reaps; the status is read from ProcessState below

	res.Stdout, res.Stderr = outBuf.buf, errBuf.buf
	res.StdoutDropped, res.StderrDropped = outBuf.dropped, errBuf.dropped
	res.Truncated = outBuf.dropped + errBuf.dropped
	res.PipesHeld = outBuf.held || errBuf.held
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			res.ExitCode = ws.ExitStatus()
		case ws.Signaled():
			res.Signal = ws.Signal()
		}
	}
	return res
}

// lookPath finds name in the PATH of env (not the agent's PATH: the plugin
// runs with env), as execvp(3) would.
func lookPath(name string, env []string) (string, error) {
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v // the last one wins, as in exec.Cmd
		}
	}
	var denied error
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 == 0 {
			denied = &fs.PathError{Op: "exec", Path: p, Err: fs.ErrPermission}
			continue
		}
		return p, nil
	}
	if denied != nil {
		return "", denied
	}
	return "", notFoundError{pathVar}
}

// notFoundError is a command name not found in the plugin's PATH.
type notFoundError struct{ path string }

func (e notFoundError) Error() string { return "not found in PATH=" + e.path }

func (notFoundError) Is(target error) bool {
	return target == fs.ErrNotExist || target == exec.ErrNotFound
}

// cappedBuffer keeps the first limit bytes and counts the rest, reading to
// EOF so the writer never blocks on a full pipe.
type cappedBuffer struct {
	buf     []byte
	limit   int
	dropped int64
	held    bool // the read deadline passed before EOF
}

func (c *cappedBuffer) readFrom(r io.Reader) {
	var chunk [4096]byte
	for {
		n, err := r.Read(chunk[:])
		if n > 0 {
			keep := max(min(n, c.limit-len(c.buf)), 0)
			c.buf = append(c.buf, chunk[:keep]...)
			c.dropped += int64(n - keep)
		}
		if err != nil {
			c.held = errors.Is(err, os.ErrDeadlineExceeded)
			return
		}
	}
}
