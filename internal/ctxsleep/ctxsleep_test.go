package ctxsleep

import (
	"context"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("a full sleep reported cancellation")
	}
	if !Sleep(context.Background(), 0) {
		t.Error("a zero sleep reported cancellation")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("a cancelled context slept")
	}
	if Sleep(ctx, 0) {
		t.Error("a zero sleep on a cancelled context reported true")
	}
	// Cancelled while sleeping: returns false without waiting the hour.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if Sleep(ctx, time.Hour) {
		t.Error("cancellation during the sleep was missed")
	}
}
