package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "recon.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestTrapsAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recon.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	r := model.Result{CheckID: model.CheckID("a", "snmptrap"), Check: "snmptrap", Type: "snmptrap", Target: "192.0.2.7",
		Time: storetest.Base, Status: model.Warning, Output: "IF-MIB::linkDown", Tags: map[string]string{"trap_oid": "1.3.6.1.6.3.1.1.5.3"},
		Metrics: []model.Metric{{Name: "IF-MIB::ifIndex.3", Value: model.Int(3)}, {Name: "IF-MIB::ifDescr.3", Value: model.String("eth0")}}}
	if err := s.WriteBatch(context.Background(), []model.Result{r, r}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(context.Background(), path) // migrations are idempotent
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	var oid, name, vb string
	db, _ := s.handle()
	if err := db.QueryRow(`SELECT count(*), max(trap_oid), max(name), max(varbinds) FROM trap`).Scan(&n, &oid, &name, &vb); err != nil {
		t.Fatal(err)
	}
	if n != 1 || oid != "1.3.6.1.6.3.1.1.5.3" || name != "IF-MIB::linkDown" || vb != `{"IF-MIB::ifDescr.3":"eth0","IF-MIB::ifIndex.3":3}` {
		t.Errorf("trap row: %d %s %s %s", n, oid, name, vb)
	}
}
