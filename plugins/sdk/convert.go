package sdk

import (
	"time"

	pb "github.com/reconmon/recon/plugins/proto"
)

func statusToPB(s Status) pb.Status {
	switch s {
	case StatusOK:
		return pb.Status_STATUS_OK
	case StatusWarning:
		return pb.Status_STATUS_WARNING
	case StatusCritical:
		return pb.Status_STATUS_CRITICAL
	case StatusUnknown:
		return pb.Status_STATUS_UNKNOWN
	}
	// recon reports an unset or invalid status as UNKNOWN and says so.
	return pb.Status_STATUS_UNSPECIFIED
}

func statusFromPB(s pb.Status) Status {
	switch s {
	case pb.Status_STATUS_OK:
		return StatusOK
	case pb.Status_STATUS_WARNING:
		return StatusWarning
	case pb.Status_STATUS_CRITICAL:
		return StatusCritical
	}
	return StatusUnknown
}

func resultToPB(r *Result) *pb.Result {
	out := &pb.Result{
		Status:     statusToPB(r.Status),
		Output:     r.Output,
		LongOutput: r.LongOutput,
		DurationNs: int64(r.Duration),
	}
	if len(r.Metrics) > 0 {
		out.Metrics = make([]*pb.Metric, len(r.Metrics))
		for i := range r.Metrics {
			out.Metrics[i] = metricToPB(&r.Metrics[i])
		}
	}
	return out
}

func metricToPB(m *Metric) *pb.Metric {
	out := &pb.Metric{Name: m.Name, Unit: m.Unit, Warn: m.Warn, Crit: m.Crit, Min: m.Min, Max: m.Max}
	switch m.Value.kind {
	case KindInt:
		out.Value = &pb.Metric_IntValue{IntValue: m.Value.i}
	case KindUint:
		out.Value = &pb.Metric_UintValue{UintValue: m.Value.u}
	case KindString:
		out.Value = &pb.Metric_StringValue{StringValue: m.Value.s}
	default:
		out.Value = &pb.Metric_FloatValue{FloatValue: m.Value.f}
	}
	return out
}

func metricFromPB(m *pb.Metric) Metric {
	out := Metric{Name: m.GetName(), Unit: m.GetUnit(), Warn: m.GetWarn(), Crit: m.GetCrit(), Min: m.Min, Max: m.Max}
	switch v := m.GetValue().(type) {
	case *pb.Metric_IntValue:
		out.Value = Int(v.IntValue)
	case *pb.Metric_UintValue:
		out.Value = Uint(v.UintValue)
	case *pb.Metric_StringValue:
		out.Value = String(v.StringValue)
	case *pb.Metric_FloatValue:
		out.Value = Float(v.FloatValue)
	}
	return out
}

func resultFromPB(r *pb.Result) Result {
	out := Result{
		Status:     statusFromPB(r.GetStatus()),
		Output:     r.GetOutput(),
		LongOutput: r.GetLongOutput(),
		Duration:   time.Duration(r.GetDurationNs()),
	}
	if ms := r.GetMetrics(); len(ms) > 0 {
		out.Metrics = make([]Metric, len(ms))
		for i, m := range ms {
			out.Metrics[i] = metricFromPB(m)
		}
	}
	return out
}

func recordFromPB(r *pb.Result) Record {
	st := "HARD"
	if r.GetStateType() == pb.StateType_STATE_TYPE_SOFT {
		st = "SOFT"
	}
	return Record{
		Result:    resultFromPB(r),
		CheckID:   r.GetCheckId(),
		Check:     r.GetCheck(),
		Type:      r.GetType(),
		Agent:     r.GetAgent(),
		Target:    r.GetTarget(),
		Time:      time.Unix(0, r.GetTimeUnixNano()),
		StateType: st,
		Attempt:   int(r.GetAttempt()),
		Tags:      r.GetTags(),
	}
}
