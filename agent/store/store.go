// Package store is the query side of the trend stores: series at any
// resolution, check status, history, replay and alert transitions. The
// postgres and sqlite sinks implement Store; the API, the web UI and the
// backtester (`recon rules test`) use it. One conformance suite (package
// storetest) runs against every implementation.
package store

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
)

// Store is a trend store's query interface.
type Store interface {
	// Checks lists every check the store has seen, with its last result.
	Checks(ctx context.Context) ([]CheckInfo, error)
	// Series returns one numeric metric of one check over [From, To],
	// oldest first, raw or from a rollup chosen by Step (see
	// ResolutionFor); rollup buckets are included when their start lies in
	// [From truncated to the bucket, To]. Non-finite values (NaN, ±Inf)
	// are never stored as points (the stores log them instead).
	Series(ctx context.Context, q SeriesQuery) (Series, error)
	// TextSeries returns the change points of a text metric in [From, To],
	// oldest first: the value holds from each point until the next.
	TextSeries(ctx context.Context, q SeriesQuery) ([]TextPoint, error)
	// MetricNames lists the metric names stored for a check.
	MetricNames(ctx context.Context, checkID uuid.UUID) ([]string, error)
	// StatusHistory returns status rows of a check in [from, to], newest
	// first, at most limit (limit <= 0: all of them).
	StatusHistory(ctx context.Context, checkID uuid.UUID, from, to time.Time, limit int) ([]StatusPoint, error)
	// Traps returns stored SNMP traps in [from, to], newest first, at most
	// limit (limit <= 0: all of them).
	Traps(ctx context.Context, from, to time.Time, limit int) ([]Trap, error)
	// Replay calls fn with every stored result in [from, to] in (time,
	// check id) order, numeric metrics included and text metrics on the
	// results where they changed (the backtester feeds them to alert
	// rules). An error from fn stops the replay and is returned.
	Replay(ctx context.Context, from, to time.Time, fn func(model.Result) error) error
	// WriteAlerts stores alert transitions idempotently: the same
	// transition (key, time, from, to, message) is stored once.
	WriteAlerts(ctx context.Context, ts []AlertTransition) error
	// Alerts returns alert transitions in [from, to], oldest first.
	Alerts(ctx context.Context, from, to time.Time) ([]AlertTransition, error)
}

// CheckInfo is a known check and its last result.
type CheckInfo struct {
	ID        uuid.UUID         `json:"id"`
	Name      string            `json:"name"`
	Agent     string            `json:"agent"`
	Type      string            `json:"type"`
	Target    string            `json:"target"`
	Tags      map[string]string `json:"tags,omitempty"`
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
	// Last result (zero Time when none).
	Time      time.Time       `json:"time"`
	Status    model.Status    `json:"status"`
	StateType model.StateType `json:"state_type"`
	Output    string          `json:"output"`
}

// SeriesQuery selects a metric of a check over a time range.
type SeriesQuery struct {
	CheckID uuid.UUID
	Metric  string
	From    time.Time
	To      time.Time
	// Step is the wanted spacing of points; it picks the resolution.
	Step time.Duration
}

// Resolution names the table a series was read from.
type Resolution string

const (
	Raw   Resolution = "raw"
	Roll5 Resolution = "5m"
	Roll1 Resolution = "1h"
	RollD Resolution = "1d"
)

// ResolutionFor picks raw data below a 5-minute step and the coarsest
// rollup whose bucket does not exceed the step above it.
func ResolutionFor(step time.Duration) Resolution {
	switch {
	case step >= 24*time.Hour:
		return RollD
	case step >= time.Hour:
		return Roll1
	case step >= 5*time.Minute:
		return Roll5
	}
	return Raw
}

// Bucket is the width of a rollup resolution (0 for raw).
func (r Resolution) Bucket() time.Duration {
	switch r {
	case Roll5:
		return 5 * time.Minute
	case Roll1:
		return time.Hour
	case RollD:
		return 24 * time.Hour
	}
	return 0
}

// Series is a numeric series.
type Series struct {
	CheckID    uuid.UUID  `json:"check_id"`
	Metric     string     `json:"metric"`
	Resolution Resolution `json:"resolution"`
	Points     []Point    `json:"points"`
}

// Point is one raw value (Count 1, Min = Max = Sum = Value) or one rollup
// bucket (Value = average).
type Point struct {
	Time  time.Time `json:"t"`
	Value float64   `json:"v"`
	Count int64     `json:"n"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Sum   float64   `json:"sum"`
}

// Trap is one stored SNMP trap (a result of type "snmptrap").
type Trap struct {
	Time    time.Time `json:"t"`
	CheckID uuid.UUID `json:"check_id"`
	Source  string    `json:"source"`   // the sending agent (Result.Target)
	OID     string    `json:"trap_oid"` // Result.Tags["trap_oid"]
	Name    string    `json:"name"`     // Result.Output: the translated trap name
	// Varbinds are the trap's variables by name: float64 or string values.
	Varbinds map[string]any `json:"varbinds"`
}

// TextPoint is a text metric taking a new value.
type TextPoint struct {
	Time  time.Time `json:"t"`
	Value string    `json:"v"`
}

// StatusPoint is one stored result's status.
type StatusPoint struct {
	Time       time.Time       `json:"t"`
	Status     model.Status    `json:"status"`
	StateType  model.StateType `json:"state_type"`
	Attempt    int             `json:"attempt"`
	Duration   time.Duration   `json:"duration_ns"`
	Output     string          `json:"output"`
	LongOutput string          `json:"long_output,omitempty"`
}

// AlertTransition is one state change of an alert instance.
type AlertTransition struct {
	Time     time.Time         `json:"time"`
	Rule     string            `json:"rule"`
	Key      string            `json:"key"` // alert instance identity (rule + series/check)
	Labels   map[string]string `json:"labels,omitempty"`
	CheckID  uuid.UUID         `json:"check_id"`
	From     string            `json:"from"` // inactive|pending|firing|resolved|flapping
	To       string            `json:"to"`
	Severity string            `json:"severity"`
	Value    float64           `json:"value"`
	Message  string            `json:"message"`
}
