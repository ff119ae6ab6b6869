package pipeline

import (
	"sync"
	"sync/atomic"

	"github.com/reconmon/recon/agent/model"
)

// Subscription is a live, best-effort feed of published results. A
// subscriber that does not keep up loses results (counted in Dropped); it
// never slows the pipeline. Live views use it; nothing durable does.
type Subscription struct {
	C       <-chan model.Result
	ch      chan model.Result
	filter  func(*model.Result) bool
	dropped atomic.Uint64
	owner   *subscribers
	once    sync.Once
}

// Dropped counts results this subscriber missed because its buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.owner.remove(s)
		close(s.ch)
	})
}

type subscribers struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
	done bool
}

// Subscribe returns a feed of results for which filter (nil = all) is true,
// buffered to buf results.
func (p *Pipeline) Subscribe(buf int, filter func(*model.Result) bool) *Subscription {
	return p.subs.add(buf, filter)
}

func (s *subscribers) add(buf int, filter func(*model.Result) bool) *Subscription {
	ch := make(chan model.Result, buf)
	sub := &Subscription{C: ch, ch: ch, filter: filter, owner: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		sub.once.Do(func() { close(ch) })
		return sub
	}
	if s.subs == nil {
		s.subs = map[*Subscription]struct{}{}
	}
	s.subs[sub] = struct{}{}
	return sub
}

func (s *subscribers) remove(sub *Subscription) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
}

func (s *subscribers) deliver(rs []model.Result) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for sub := range s.subs {
		for i := range rs {
			if sub.filter != nil && !sub.filter(&rs[i]) {
				continue
			}
			select {
			case sub.ch <- rs[i]:
			default:
				sub.dropped.Add(1)
			}
		}
	}
}

func (s *subscribers) closeAll() {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.done = true
	s.mu.Unlock()
	for sub := range subs {
		sub.once.Do(func() { close(sub.ch) })
	}
}
