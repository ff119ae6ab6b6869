// Package ctxsleep waits for a duration or a context, whichever ends
// first: the pause of every retry loop and paced background job.
package ctxsleep

import (
	"context"
	"time"
)

// Sleep waits for d and reports true, or returns false as soon as ctx is
// done. A zero or negative d returns at once (true unless ctx is done).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
