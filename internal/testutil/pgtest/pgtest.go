// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb and
// pg_ctl in a temporary directory (as an unprivileged user when the tests
// run as root, which initdb refuses), listening only on a Unix socket in
// that directory. With CI=true a missing PostgreSQL fails the test.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconmon/recon/internal/testutil"
)

// Cluster is a running throwaway cluster.
type Cluster struct {
	Dir   string
	Port  int
	bin   string
	cred  *syscall.Credential
	fsync bool
	dbs   atomic.Int64
	mu    sync.Mutex
	up    bool
}

// Options tune a cluster.
type Options struct {
	// Fsync keeps fsync on (durability tests that restart the server);
	// otherwise the server runs with -F for speed.
	Fsync bool
}

func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// Start starts a cluster that is stopped and removed when tb ends.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	c, err := New(opts)
	if err != nil {
		if err == ErrMissing {
			testutil.MissingPeer(tb, "%v", err)
		}
		tb.Fatal(err)
	}
	tb.Cleanup(c.Remove)
	return c
}

// ErrMissing is returned by New when PostgreSQL is not installed.
var ErrMissing = fmt.Errorf("postgresql server binaries not found in /usr/lib/postgresql/*/bin (Debian package postgresql)")

// New starts a cluster; the caller must Remove it (TestMain-friendly).
func New(opts Options) (*Cluster, error) {
	bin := binDir()
	if bin == "" {
		return nil, ErrMissing
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin, fsync: opts.Fsync}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root and no user nobody: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		os.Chmod(dir, 0o755)
		os.Chown(dir, uid, gid)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// Start (re)starts the server on the same directory and port.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -p %d -c max_connections=200", c.Dir, c.Port)
	if !c.fsync {
		opts += " -F"
	}
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-o", opts, "-l", filepath.Join(c.Dir, "log"), "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
		return fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	c.up = true
	return nil
}

// Stop stops the server immediately (like a crash: no checkpoint).
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		return nil
	}
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	c.up = false
	return nil
}

// Restart stops and starts the server.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start()
}

// Remove stops the server and deletes its directory.
func (c *Cluster) Remove() {
	c.Stop()
	os.RemoveAll(c.Dir)
}

// DSN is the connection string of a database of the cluster.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", c.Dir, c.Port, db)
}

// NewDatabase creates a fresh database and returns its DSN.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d", c.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return c.DSN(name)
}

// Psql returns the path of psql next to the server binaries.
func (c *Cluster) Psql() string { return filepath.Join(c.bin, "psql") }

// Cred is the credential server processes run with (nil when not root);
// tools run against the cluster's socket directory may need it.
func (c *Cluster) Cred() *syscall.Credential { return c.cred }

// Shared returns *c, starting the cluster on first use (one cluster per
// test package; remove it in TestMain with (*c).Remove()).
func Shared(tb testing.TB, c **Cluster) *Cluster {
	tb.Helper()
	if *c == nil {
		nc, err := New(Options{})
		if err != nil {
			if err == ErrMissing {
				testutil.MissingPeer(tb, "%v", err)
			}
			tb.Fatal(err)
		}
		*c = nc
	}
	return *c
}
