package passive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios"
)

// Config is the [passive] section.
type Config struct {
	// CommandFile is a FIFO (created if missing) that accepts external
	// command lines, like Nagios's nagios.cmd.
	CommandFile string `toml:"command_file"`
	// Socket is a Unix stream socket accepting the same lines.
	Socket string `toml:"socket"`
}

// Submitter is what receives passive results: the scheduler.
type Submitter interface {
	Lookup(name string) (uuid.UUID, bool)
	Submit(ctx context.Context, id uuid.UUID, res model.Result) (model.Result, error)
}

// Receiver reads external commands from a command file and/or a socket.
type Receiver struct {
	cfg  Config
	sub  Submitter
	log  *slog.Logger
	fifo *os.File
	ln   net.Listener
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	accepted, rejected, unknownCheck atomic.Uint64
}

// NewReceiver validates cfg; it opens nothing.
func NewReceiver(cfg Config, sub Submitter, log *slog.Logger) (*Receiver, error) {
	if cfg.CommandFile == "" && cfg.Socket == "" {
		return nil, errors.New("passive: set command_file and/or socket")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Receiver{cfg: cfg, sub: sub, log: log.With("source", "passive")}, nil
}

// Start opens the command file and socket.
func (r *Receiver) Start(ctx context.Context) error {
	r.ctx, r.stop = context.WithCancel(ctx)
	if p := r.cfg.CommandFile; p != "" {
		f, err := openFIFO(p)
		if err != nil {
			return err
		}
		r.fifo = f
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.readLines(f, "command_file") }()
	}
	if p := r.cfg.Socket; p != "" {
		if st, err := os.Lstat(p); err == nil && st.Mode()&os.ModeSocket != 0 {
			os.Remove(p) // a stale socket from a previous run
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			r.closeFIFO()
			return fmt.Errorf("passive: listen on %s: %w", p, err)
		}
		os.Chmod(p, 0o660)
		r.ln = ln
		r.wg.Add(1)
		go r.accept()
	}
	r.log.Info("accepting passive check results", "command_file", r.cfg.CommandFile, "socket", r.cfg.Socket)
	return nil
}

func openFIFO(p string) (*os.File, error) {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := syscall.Mkfifo(p, 0o660); err != nil {
			return nil, fmt.Errorf("passive: create command file %s: %w", p, err)
		}
	case err != nil:
		return nil, fmt.Errorf("passive: command file %s: %w", p, err)
	case st.Mode()&os.ModeNamedPipe == 0:
		return nil, fmt.Errorf("passive: command file %s exists and is not a FIFO", p)
	}
	// Read-write, so the FIFO never reports EOF when a writer closes.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("passive: open command file %s: %w", p, err)
	}
	return f, nil
}

func (r *Receiver) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			stop := context.AfterFunc(r.ctx, func() { c.Close() })
			defer stop()
			r.readLines(c, "socket")
		}()
	}
}

func (r *Receiver) readLines(rd io.Reader, from string) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if err := r.Process(r.ctx, line); err != nil {
			r.log.Warn("passive result rejected", "from", from, "err", err, "line", truncate(line, 200))
		}
	}
	if err := sc.Err(); err != nil && r.ctx.Err() == nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) {
		r.log.Error("read external commands", "from", from, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Process parses one external command line and submits its result.
func (r *Receiver) Process(ctx context.Context, line string) error {
	cmd, err := ParseCommand(line)
	if err != nil {
		r.rejected.Add(1)
		return err
	}
	_, err = SubmitCommand(ctx, r.sub, cmd)
	switch {
	case errors.Is(err, ErrUnknownCheck):
		r.unknownCheck.Add(1)
	case err != nil:
		r.rejected.Add(1)
	default:
		r.accepted.Add(1)
	}
	return err
}

// ErrUnknownCheck is returned for a result whose check is not configured.
var ErrUnknownCheck = errors.New("no passive check with that name is configured")

// SubmitCommand turns a parsed command into a result of its check.
func SubmitCommand(ctx context.Context, sub Submitter, cmd Command) (model.Result, error) {
	var id uuid.UUID
	found := false
	for _, n := range cmd.CheckNames() {
		if id, found = sub.Lookup(n); found {
			break
		}
	}
	if !found {
		return model.Result{}, fmt.Errorf("%w: %q", ErrUnknownCheck, cmd.CheckNames()[0])
	}
	out := nagios.ParseOutput([]byte(cmd.Output))
	long := out.LongOutput
	for _, n := range out.Notes {
		long = joinLines(long, n)
	}
	res := model.Result{Status: cmd.Status, Output: out.Text, LongOutput: long, Metrics: out.Metrics, Time: cmd.Time}
	return sub.Submit(ctx, id, res)
}

func joinLines(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

// Stats counts processed commands.
type Stats struct{ Accepted, Rejected, UnknownCheck uint64 }

// Counters reports the stats for /metrics.
func (r *Receiver) Counters() map[string]uint64 {
	st := r.Stats()
	return map[string]uint64{"accepted": st.Accepted, "rejected": st.Rejected, "unknown_check": st.UnknownCheck}
}

func (r *Receiver) Stats() Stats {
	return Stats{r.accepted.Load(), r.rejected.Load(), r.unknownCheck.Load()}
}

func (r *Receiver) closeFIFO() {
	if r.fifo != nil {
		r.fifo.Close()
	}
}

// Close stops reading; the command file stays for the next start.
func (r *Receiver) Close() error {
	if r.stop == nil {
		return nil
	}
	r.stop()
	r.closeFIFO()
	if r.ln != nil {
		r.ln.Close()
		os.Remove(r.cfg.Socket)
	}
	r.wg.Wait()
	return nil
}
