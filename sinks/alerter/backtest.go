package alerter

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store"
)

// BacktestReport summarises a backtest.
type BacktestReport struct {
	Results       int
	Transitions   []store.AlertTransition
	Notifications []Notification
}

// Backtest replays stored results in [from, to] through the sink's rules
// with the clock at each result's time, as if the rules had been live:
// nothing is notified or stored, the timeline is returned.
func (s *Sink) Backtest(ctx context.Context, st store.Store, from, to time.Time) (*BacktestReport, error) {
	L, rules, err := s.loadRules()
	if err != nil {
		return nil, err
	}
	defer L.Close()
	sil, _ := LoadSilences("")
	e := NewEngine(L, rules, s.inhibits(), sil, s.defaultNotify())
	rep := &BacktestReport{}
	collect := func() {
		ts, ns := e.Drain()
		for _, t := range ts {
			rep.Transitions = append(rep.Transitions, t.AlertTransition)
		}
		rep.Notifications = append(rep.Notifications, ns...)
	}
	var last time.Time
	err = st.Replay(ctx, from, to, func(r model.Result) error {
		// Timers fire at the data's time, second by second at most.
		if !last.IsZero() {
			for t := last.Add(time.Second); t.Before(r.Time); t = t.Add(time.Second) {
				if r.Time.Sub(t) > time.Hour {
					t = r.Time.Add(-time.Hour) // long gaps: skip ahead
				}
				e.Tick(t)
			}
		}
		e.Tick(r.Time)
		e.Process(ctx, &r)
		collect()
		rep.Results++
		last = r.Time
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backtest: replay: %w", err)
	}
	e.Tick(to)
	collect()
	return rep, nil
}

// PrintTimeline writes the report as a human-readable timeline.
func (rep *BacktestReport) PrintTimeline(w io.Writer) {
	fmt.Fprintf(w, "replayed %d results: %d transitions, %d notifications would have been sent\n\n",
		rep.Results, len(rep.Transitions), len(rep.Notifications))
	ni := 0
	for _, t := range rep.Transitions {
		for ni < len(rep.Notifications) && !rep.Notifications[ni].Time.After(t.Time) {
			n := rep.Notifications[ni]
			fmt.Fprintf(w, "%s  NOTIFY %-13s %s -> %v\n", n.Time.UTC().Format(time.RFC3339), n.Type, n.Summary, n.Notify)
			ni++
		}
		check := t.Labels["check"]
		if m := t.Labels["metric"]; m != "" {
			check += " " + m
		}
		fmt.Fprintf(w, "%s  %-8s -> %-8s %-24s %s  (%s)\n", t.Time.UTC().Format(time.RFC3339), t.From, t.To, t.Rule, check, t.Message)
	}
	for ; ni < len(rep.Notifications); ni++ {
		n := rep.Notifications[ni]
		fmt.Fprintf(w, "%s  NOTIFY %-13s %s -> %v\n", n.Time.UTC().Format(time.RFC3339), n.Type, n.Summary, n.Notify)
	}
}
