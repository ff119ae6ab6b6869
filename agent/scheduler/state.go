package scheduler

import "github.com/reconmon/recon/agent/model"

// state is a check's Nagios soft/hard state. The initial state is OK/HARD,
// as in Nagios.
type state struct {
	status    model.Status
	stateType model.StateType
	attempt   int
}

// next applies one result with status s to the state, following Nagios:
//   - a problem after OK is attempt 1, SOFT (HARD when max_attempts is 1);
//   - a problem while SOFT counts up and turns HARD at max_attempts;
//   - a problem while HARD stays HARD (a change between problem states is
//     a hard state change);
//   - OK after a SOFT problem is a soft recovery (SOFT), OK after a HARD
//     problem is a hard recovery, OK after OK is HARD.
func (st state) next(s model.Status, maxAttempts int) state {
	if maxAttempts < 1 {
		maxAttempts = 1
	}
	if s == model.OK {
		t := model.Hard
		if st.status != model.OK && st.stateType == model.Soft {
			t = model.Soft
		}
		return state{status: s, stateType: t, attempt: 1}
	}
	switch {
	case st.status == model.OK:
		t := model.Soft
		if maxAttempts == 1 {
			t = model.Hard
		}
		return state{status: s, stateType: t, attempt: 1}
	case st.stateType == model.Soft:
		a := st.attempt + 1
		t := model.Soft
		if a >= maxAttempts {
			a, t = maxAttempts, model.Hard
		}
		return state{status: s, stateType: t, attempt: a}
	default:
		return state{status: s, stateType: model.Hard, attempt: maxAttempts}
	}
}

// retrying reports whether the check is in a soft problem state and should
// be re-run at its retry period.
func (st state) retrying() bool { return st.status != model.OK && st.stateType == model.Soft }
