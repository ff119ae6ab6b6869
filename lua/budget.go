package lua

import (
	"context"
	"fmt"
)

// budget is the context a state's VM runs under. gopher-lua calls Done on
// it before every instruction, which makes it the instruction counter:
// past the run's budget, Done returns a closed channel and Err says why, so
// the VM raises exactly as it does at a timeout. It is only ever used by
// the goroutine running the state (coroutines run on the same goroutine),
// so the counter needs no atomics; module calls get the run's own context,
// never this one.
type budget struct {
	context.Context
	done     <-chan struct{}
	n, max   int64
	exceeded bool
}

// closedChan is the Done channel of an exhausted budget (never written).
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (b *budget) reset(ctx context.Context, max int64) {
	b.Context, b.done, b.n, b.max, b.exceeded = ctx, ctx.Done(), 0, max, false
}

func (b *budget) Done() <-chan struct{} {
	b.n++
	if b.n > b.max {
		b.exceeded = true
		return closedChan
	}
	return b.done
}

func (b *budget) Err() error {
	if b.exceeded {
		return errInstructions{b.max}
	}
	return b.Context.Err()
}

type errInstructions struct{ max int64 }

func (e errInstructions) Error() string {
	return fmt.Sprintf("instruction limit of %d exceeded (max_instructions)", e.max)
}
