package runtime

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/stream"
)

// PrepareClone builds a clone of the configured check id for temporal
// streaming: the same definition at another period, with its own runner.
func (rt *Runtime) PrepareClone(id uuid.UUID, period, timeout time.Duration) (*model.Check, checktype.Runner, error) {
	cfg := rt.Config()
	for _, c := range cfg.Checks {
		if c.ID != id {
			continue
		}
		if c.Type == "passive" {
			return nil, nil, fmt.Errorf("check %q is passive: there is nothing to run", c.Name)
		}
		typ, ok := rt.opts.Registries.Checks.Lookup(c.Type)
		if !ok {
			return nil, nil, fmt.Errorf("check %q: unknown type %q", c.Name, c.Type)
		}
		cp := *c
		cp.Period, cp.Timeout, cp.MaxAttempts = period, timeout, 1
		r, err := typ.Prepare(&cp)
		if err != nil {
			return nil, nil, fmt.Errorf("check %q: %w", c.Name, err)
		}
		return &cp, r, nil
	}
	return nil, nil, stream.ErrNotFound
}
