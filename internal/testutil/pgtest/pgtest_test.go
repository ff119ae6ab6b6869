package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, dsn, q string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, q).Scan(&s)
	return s, err
}

func TestClusterLifecycle(t *testing.T) {
	c := Start(t, Options{Fsync: true, Settings: map[string]string{"work_mem": "8MB"}})
	if v, err := query(t, c.ConnString(), "SHOW server_version_num"); err != nil || v < "150000" {
		t.Fatalf("server version %q: %v", v, err)
	}
	if v, _ := query(t, c.ConnString(), "SHOW fsync"); v != "on" {
		t.Errorf("fsync %q with Options.Fsync", v)
	}
	if v, _ := query(t, c.ConnString(), "SHOW work_mem"); v != "8MB" {
		t.Errorf("work_mem %q: extra settings not applied", v)
	}
	if v, _ := query(t, c.ConnString(), "SHOW listen_addresses"); v != "" {
		t.Errorf("listens on TCP: %q", v)
	}
	dsn := c.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), "CREATE TABLE x AS SELECT 'kept'::text AS v")
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, dsn, "SELECT 'up'"); err == nil {
		t.Fatal("query succeeded on a stopped cluster")
	}
	if err := c.Restart(); err != nil { // Restart from stopped starts it
		t.Fatal(err)
	}
	if v, err := query(t, dsn, "SELECT v FROM x"); err != nil || v != "kept" {
		t.Fatalf("after an immediate stop and start: %q %v", v, err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if v, err := query(t, dsn, "SELECT v FROM x"); err != nil || v != "kept" {
		t.Fatalf("after a restart: %q %v", v, err)
	}
	dir := c.Dir
	c.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory left behind: %v", err)
	}
}

func TestFastByDefault(t *testing.T) {
	var c *Cluster
	s := Shared(t, &c)
	defer s.Remove()
	if Shared(t, &c) != s {
		t.Fatal("Shared started a second cluster")
	}
	if v, _ := query(t, s.ConnString(), "SHOW fsync"); v != "off" {
		t.Errorf("fsync %q, want off (-F) by default", v)
	}
	if a, b := s.NewDatabase(t), s.NewDatabase(t); a == b {
		t.Errorf("NewDatabase returned the same database twice: %s", a)
	}
}
