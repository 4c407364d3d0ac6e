package traffic

import (
	"context"
	"time"
)

// Clock is the time source of the limits, the timetables and the quota
// windows.
type Clock interface {
	Now() time.Time
	// WaitUntil returns when t has come, or ctx's error when ctx ends
	// first.
	WaitUntil(ctx context.Context, t time.Time) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) WaitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Real is the wall clock.
var Real Clock = realClock{}
