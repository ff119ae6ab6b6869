package alerter

// Flap detection exactly as Nagios computes it (base/flapping.c): the last
// 21 states are kept; each of the 20 changes between consecutive states is
// weighted linearly from 0.75 (oldest) to 1.25 (newest); the percent state
// change is the weighted sum over 20, times 100. An instance starts
// flapping at or above the high threshold and stops at or below the low
// one; in between it keeps its flapping state.
const (
	flapHistory   = 21
	flapLowCurve  = 0.75
	flapHighCurve = 1.25
	// Nagios's defaults for services.
	DefaultFlapLow  = 5.0
	DefaultFlapHigh = 20.0
)

type flapState struct {
	History  [flapHistory]int8 `json:"history"`
	Index    int               `json:"index"`
	Filled   int               `json:"filled"`
	Flapping bool              `json:"flapping"`
	Percent  float64           `json:"percent"`
}

// record adds a state and returns whether flapping started or stopped.
func (f *flapState) record(state int8, low, high float64) (started, stopped bool) {
	if f.Filled == 0 {
		// Nagios starts with a history full of the current state.
		for i := range f.History {
			f.History[i] = state
		}
		f.Filled = flapHistory
	}
	f.History[f.Index] = state
	f.Index = (f.Index + 1) % flapHistory
	f.Percent = f.percent()
	was := f.Flapping
	switch {
	case f.Percent >= high:
		f.Flapping = true
	case f.Percent <= low:
		f.Flapping = false
	}
	return f.Flapping && !was, was && !f.Flapping
}

func (f *flapState) percent() float64 {
	changes := 0.0
	// Oldest first: the slot after the newest.
	y := f.Index
	last := f.History[y]
	for x := 1; x < flapHistory; x++ {
		y = (y + 1) % flapHistory
		if f.History[y] != last {
			changes += float64(x-1)*(flapHighCurve-flapLowCurve)/float64(flapHistory-2) + flapLowCurve
		}
		last = f.History[y]
	}
	return changes * 100 / float64(flapHistory-1)
}
