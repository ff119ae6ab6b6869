package nagios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultOutputLimit caps the bytes kept from each of stdout and stderr.
const DefaultOutputLimit = 64 << 10

// killGrace is how long a timed-out plugin's process group has between
// SIGTERM and SIGKILL.
const killGrace = 500 * time.Millisecond

// ExecResult is what running a plugin produced, before interpretation.
type ExecResult struct {
	ExitCode  int // -1 when the process did not exit normally
	Signal    syscall.Signal
	Stdout    []byte
	Stderr    []byte
	Truncated int64 // bytes of stdout+stderr dropped beyond the limit
	TimedOut  bool
	StartErr  error // the process could not be started
	Duration  time.Duration
}

// ExecOptions tune one execution.
type ExecOptions struct {
	Env         []string // complete environment; nil means a minimal one
	OutputLimit int      // 0 means DefaultOutputLimit
	Dir         string
}

// minimalEnv is what plugins get unless configured otherwise: predictable
// output (LANG=C) and the usual system PATH.
var minimalEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}

// Exec runs argv in its own process group until it exits or ctx is done.
// On timeout the whole group gets SIGTERM, then SIGKILL; after a normal
// exit any process the plugin left behind in its group is killed too, so
// no plugin can leak children or hold the output pipes open.
func Exec(ctx context.Context, argv []string, opts ExecOptions) ExecResult {
	start := time.Now()
	res := ExecResult{ExitCode: -1}
	if len(argv) == 0 {
		res.StartErr = errors.New("empty command")
		return res
	}
	limit := opts.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	env := opts.Env
	if env == nil {
		env = minimalEnv
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		res.StartErr = fmt.Errorf("pipe: %w", err)
		return res
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		res.StartErr = fmt.Errorf("pipe: %w", err)
		return res
	}
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: env, Dir: opts.Dir, Stdout: outW, Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if lp, err := exec.LookPath(argv[0]); err == nil {
		cmd.Path = lp
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		res.StartErr = err
		res.Duration = time.Since(start)
		return res
	}
	pid := cmd.Process.Pid

	var wg sync.WaitGroup
	var outBuf, errBuf cappedBuffer
	outBuf.limit, errBuf.limit = limit, limit
	wg.Add(2)
	go func() { defer wg.Done(); outBuf.readFrom(outR) }()
	go func() { defer wg.Done(); errBuf.readFrom(errR) }()

	// Wait for the exit without reaping, so the group ID cannot be reused
	// while we signal it.
	exited := make(chan struct{})
	go func() {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		close(exited)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		res.TimedOut = true
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(killGrace):
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	// Leftover children of the plugin die with their group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	waitErr := cmd.Wait()
	wg.Wait()
	outR.Close()
	errR.Close()
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = outBuf.buf, errBuf.buf
	res.Truncated = outBuf.dropped + errBuf.dropped
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			res.ExitCode = ws.ExitStatus()
		case ws.Signaled():
			res.Signal = ws.Signal()
		}
	} else if waitErr != nil {
		res.StartErr = waitErr
	}
	return res
}

// cappedBuffer keeps the first limit bytes and counts the rest, reading to
// EOF so the writer never blocks on a full pipe.
type cappedBuffer struct {
	buf     []byte
	limit   int
	dropped int64
}

func (c *cappedBuffer) readFrom(r io.Reader) {
	var chunk [4096]byte
	for {
		n, err := r.Read(chunk[:])
		if n > 0 {
			keep := min(n, c.limit-len(c.buf))
			if keep > 0 {
				c.buf = append(c.buf, chunk[:keep]...)
			}
			c.dropped += int64(n - max(keep, 0))
		}
		if err != nil {
			return
		}
	}
}
