package checkpoint

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOutOfReachErrorText: what a cut worker's last statements say: when
// the database last answered, what was not written, when the lease runs
// out; never "context deadline exceeded".
func TestOutOfReachErrorText(t *testing.T) {
	ends := time.Date(2026, 12, 6, 19, 50, 4, 0, time.Local)
	for _, c := range []struct {
		name  string
		since time.Time
		want  string
	}{
		{"answered before", ends.Add(-2 * time.Second),
			"ledger out of reach since 19:50:02: the run's end was not recorded; the lease runs out at 19:50:04, then another worker may take the account over; nothing was lost"},
		{"never answered", time.Time{},
			"ledger out of reach since the ledger was opened: the run's end was not recorded; the lease runs out at 19:50:04, then another worker may take the account over; nothing was lost"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &OutOfReachError{Since: c.since, LeaseEnds: ends, Meaning: "the run's end was not recorded", Err: context.DeadlineExceeded}
			if got := e.Error(); got != c.want {
				t.Errorf("Error() = %q, want %q", got, c.want)
			}
			if !errors.Is(e, context.DeadlineExceeded) {
				t.Error("the statement's own error is not wrapped")
			}
		})
	}
}

// TestOutOfReachOnlyPastFinal: outOfReach turns only an error of a
// statement that final's deadline ended into an *OutOfReachError.
func TestOutOfReachOnlyPastFinal(t *testing.T) {
	e := &pgEngine{}
	ctx, cancel := e.final(context.Background(), "nothing")
	cancel()
	boom := errors.New("boom")
	if got := outOfReach(ctx, boom); got != boom {
		t.Errorf("reachable database: outOfReach = %v, want the error as is", got)
	}
	e.outOfReach, e.lastAnswer = time.Now().Add(-time.Millisecond), time.Now().Add(-time.Second)
	ctx, cancel = e.final(context.Background(), "the run's end was not recorded")
	defer cancel()
	<-ctx.Done()
	var oor *OutOfReachError
	if got := outOfReach(ctx, boom); !errors.As(got, &oor) || !errors.Is(got, boom) || oor.Meaning != "the run's end was not recorded" {
		t.Errorf("past final's deadline: outOfReach = %v, want an *OutOfReachError wrapping boom", got)
	}
	if got := outOfReach(ctx, oor); got != error(oor) {
		t.Errorf("an *OutOfReachError again: %v, want it as is", got)
	}
	if got := outOfReach(ctx, nil); got != nil {
		t.Errorf("no error: %v", got)
	}
}
