// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb and
// pg_ctl in a temporary directory (as an unprivileged user when the tests
// run as root, which initdb refuses), listening only on a Unix socket in
// that directory. With CI=true a missing PostgreSQL fails the test.
//
// One cluster per test package keeps tests fast; give each test its own
// database with NewDatabase:
//
//	var cluster *pgtest.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.Shared(t, &cluster).NewDatabase(t)
//		…
//	}
//
// Tests that stop and restart the server (outages, durability) start their
// own with Start(t, pgtest.Options{Fsync: true}).
package pgtest

import (
	"context"
	"errors"
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
	Dir  string // socket directory; the data directory is Dir/data
	Port int    // names the socket (.s.PGSQL.<Port>); nothing listens on TCP
	bin  string
	cred *syscall.Credential
	opts Options
	dbs  atomic.Int64
	mu   sync.Mutex
	up   bool
}

// Options tune a cluster.
type Options struct {
	// Fsync keeps fsync on (durability tests that kill or restart the
	// server); otherwise the server runs with -F for speed.
	Fsync bool
	// Settings are extra server settings (name → value, as -c name=value).
	Settings map[string]string
}

// ErrMissing is returned by New when PostgreSQL is not installed.
var ErrMissing = errors.New("postgresql server binaries not found in /usr/lib/postgresql/*/bin (Debian package postgresql)")

// BinDir is the newest /usr/lib/postgresql/N/bin holding initdb, or "".
func BinDir() string {
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

// Start starts a cluster that is stopped and removed when tb ends. A
// missing PostgreSQL skips tb (fails it under CI).
func Start(tb testing.TB, opts ...Options) *Cluster {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	c, err := New(o)
	if err != nil {
		if errors.Is(err, ErrMissing) {
			testutil.MissingPeer(tb, "%v", err)
		}
		tb.Fatal(err)
	}
	tb.Cleanup(c.Remove)
	return c
}

// Shared returns *c, starting the cluster on first use: one cluster per
// test package, removed by Main (or by the caller's TestMain).
func Shared(tb testing.TB, c **Cluster) *Cluster {
	tb.Helper()
	if *c == nil {
		nc, err := New(Options{})
		if err != nil {
			if errors.Is(err, ErrMissing) {
				testutil.MissingPeer(tb, "%v", err)
			}
			tb.Fatal(err)
		}
		*c = nc
	}
	return *c
}

// Main runs the package's tests and then removes the shared cluster, if
// one was started; use it as os.Exit(pgtest.Main(m, &cluster)).
func Main(m *testing.M, c **Cluster) int {
	code := m.Run()
	if *c != nil {
		(*c).Remove()
	}
	return code
}

// New starts a cluster; the caller must Remove it.
func New(opts Options) (*Cluster, error) {
	bin := BinDir()
	if bin == "" {
		return nil, ErrMissing
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{Dir: dir, bin: bin, opts: opts}
	if err := c.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			return err
		}
		c.cred = cred
		// The socket directory must be reachable by the server's user;
		// its parent (the temp dir) already is.
		if err := os.Chmod(c.Dir, 0o755); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if err := os.Chown(c.Dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	// The port only names the socket file; any free number will do, and
	// asking the kernel for one avoids two clusters choosing the same.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("pgtest: pick a port: %w", err)
	}
	c.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	out, err := c.run("initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	return nil
}

// unprivileged returns the credential of the user the server runs as when
// the tests run as root: nobody, or a recon-test user created for it.
func unprivileged() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		u, err = user.Lookup("recon-test")
	}
	if err != nil {
		out, uerr := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "recon-test").CombinedOutput()
		if uerr != nil {
			return nil, fmt.Errorf("pgtest: running as root, no user nobody, and useradd recon-test failed: %v: %s", uerr, out)
		}
		if u, err = user.Lookup("recon-test"); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// Start (re)starts the server on the same directory and socket.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		return nil
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -p %d -c max_connections=200", c.Dir, c.Port)
	if !c.opts.Fsync {
		opts += " -F"
	}
	names := make([]string, 0, len(c.opts.Settings))
	for k := range c.opts.Settings {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		opts += fmt.Sprintf(" -c %s=%s", k, c.opts.Settings[k])
	}
	logFile := filepath.Join(c.Dir, "log")
	out, err := c.run("pg_ctl", "-D", c.dataDir(), "-o", opts, "-l", logFile, "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	c.up = true
	return nil
}

// Stop stops the server at once, like a crash (-m immediate: no
// checkpoint; the next start recovers from the WAL).
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		return nil
	}
	out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	c.up = false
	return nil
}

// Restart stops the server immediately and starts it again.
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

// DSN is the connection string of database db of the cluster.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", c.Dir, c.Port, db)
}

// ConnString is the connection string of the default database, postgres.
func (c *Cluster) ConnString() string { return c.DSN("postgres") }

// NewDatabase creates a fresh database and returns its DSN; tests sharing
// a cluster stay independent this way.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d", c.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.ConnString())
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return c.DSN(name)
}

// Bin is the path of a PostgreSQL program next to the server (psql, …).
func (c *Cluster) Bin(name string) string { return filepath.Join(c.bin, name) }

// Psql returns the path of psql next to the server binaries.
func (c *Cluster) Psql() string { return c.Bin("psql") }

// Cred is the credential server processes run with (nil when not root);
// tools run against the cluster's socket directory may need it.
func (c *Cluster) Cred() *syscall.Credential { return c.cred }
