package checkpoint

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// TestPostgresFleet: the workers table, the queue's counts, claims among
// some accounts, re-queueing, takeovers and the fleet's status, on a
// private PostgreSQL.
func TestPostgresFleet(t *testing.T) {
	srv := postgres.Start(t, postgres.Options{})
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, srv *postgres.Server, dbURL string)
	}{
		{"Workers", testFleetWorkers},
		{"Queue", testFleetQueue},
		{"Throughput", testFleetThroughput},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, srv, postgres.Database(t, srv)) })
	}
}

// testFleetWorkers: a heartbeat registers the worker and adds to the
// throughput; Drain by full name or by "<host>:<pid>" marks it, and its
// next heartbeat says so; an unknown worker is ErrUnknownWorker; Workers
// counts the accounts each holds; LeaveFleet removes it.
func testFleetWorkers(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	a := openPG(t, srv, dbURL, "", 0) // named <host>:<pid>:...
	b := openPG(t, srv, dbURL, "bee", 0)
	for _, l := range []*Ledger{a, b} {
		if draining, err := l.Heartbeat(ctx, Beat{Version: "v9", Messages: 3, Bytes: 300}); err != nil || draining {
			t.Fatalf("first heartbeat: draining %v, %v", draining, err)
		}
	}
	res, err := b.ResolveAccount(ctx, testSpec("alice"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	ws, _, err := a.Workers(ctx)
	if err != nil || len(ws) != 2 {
		t.Fatalf("Workers: %+v, %v; want 2", ws, err)
	}
	for _, w := range ws {
		want := map[string]int{a.Worker(): 0, "bee": 1}
		if hold, ok := want[w.ID]; !ok || w.Holding != hold || w.Version != "v9" || w.Heartbeat.IsZero() {
			t.Errorf("worker %+v: want one of %v holding as many, version v9, a heartbeat", w, want)
		}
	}
	short := WorkerHost(a.Worker())
	if got, err := b.Drain(ctx, short); err != nil || len(got) != 1 || got[0] != a.Worker() {
		t.Fatalf("Drain(%q) = %v, %v; want [%s]", short, got, err, a.Worker())
	}
	if draining, err := a.Heartbeat(ctx, Beat{Version: "v9"}); err != nil || !draining {
		t.Errorf("heartbeat after the drain: draining %v, %v; want true", draining, err)
	}
	if draining, err := b.Heartbeat(ctx, Beat{Version: "v9"}); err != nil || draining {
		t.Errorf("the other worker's heartbeat: draining %v, %v; want false", draining, err)
	}
	if _, err := a.Drain(ctx, "nobody:1"); !errors.Is(err, ErrUnknownWorker) {
		t.Errorf("Drain of an unknown worker: %v, want ErrUnknownWorker", err)
	}
	f, err := a.Fleet(ctx)
	if err != nil || f.MessagesTotal != 6 || f.BytesTotal != 600 || f.Messages5m != 6 {
		t.Errorf("Fleet throughput: %d messages, %d bytes, %d in 5 min (%v); want 6, 600, 6", f.MessagesTotal, f.BytesTotal, f.Messages5m, err)
	}
	if err := a.LeaveFleet(ctx); err != nil {
		t.Fatal(err)
	}
	if ws, _, err := a.Workers(ctx); err != nil || len(ws) != 1 || ws[0].ID != "bee" {
		t.Errorf("Workers after LeaveFleet: %+v, %v; want bee only", ws, err)
	}
}

// testFleetThroughput: a heartbeat folds the throughput minutes older than
// keepThroughput into one row, so that the table does not grow with every
// minute a worker ever moved mail (issue 18: nothing grows without bound),
// and Fleet's total stays what was moved; recent minutes stay apart.
func testFleetThroughput(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	a := openPG(t, srv, dbURL, "ant", 0)
	b := openPG(t, srv, dbURL, "bee", 0)
	if _, err := a.Heartbeat(ctx, Beat{Messages: 1, Bytes: 10}); err != nil {
		t.Fatal(err)
	}
	// Three old minutes of two workers, as heartbeats twice
	// keepThroughput ago left them.
	old := time.Now().Add(-2 * keepThroughput).Truncate(time.Minute)
	for i, w := range []string{"ant", "bee", "ant"} {
		if _, err := a.w.ExecContext(ctx, `INSERT INTO throughput (minute, worker, messages, bytes) VALUES ($1, $2, $3, $4)`,
			old.Add(time.Duration(i)*time.Minute).UnixNano(), w, 100, 1000); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		for _, l := range []*Ledger{a, b} {
			if _, err := l.Heartbeat(ctx, Beat{Messages: 2, Bytes: 20}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var oldRows, folded int
	if err := a.r.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE minute > 0 AND minute < $1), COUNT(*) FILTER (WHERE minute = 0)
		FROM throughput`, time.Now().Add(-keepThroughput).UnixNano()).Scan(&oldRows, &folded); err != nil {
		t.Fatal(err)
	}
	if oldRows != 0 || folded != 1 {
		t.Errorf("%d rows older than %v and %d folded rows after the heartbeats; want 0 and 1", oldRows, keepThroughput, folded)
	}
	f, err := a.Fleet(ctx)
	if err != nil || f.MessagesTotal != 309 || f.BytesTotal != 3090 || f.Messages5m != 9 {
		t.Errorf("Fleet throughput: %d messages, %d bytes, %d in 5 min (%v); want 309, 3090, 9", f.MessagesTotal, f.BytesTotal, f.Messages5m, err)
	}
}

// testFleetQueue: ClaimAmong claims only the accounts named; Left counts
// queued, waiting, paused and running; Requeue puts a claim back for
// later and DueNow makes it due; a claim of an expired lease says whose
// and how late (TakenOver); Fleet lists the running account with its
// worker; RequestRetry (the status page's) queues an idle account again.
func testFleetQueue(t *testing.T, srv *postgres.Server, dbURL string) {
	ctx := context.Background()
	a := openPG(t, srv, dbURL, "wa", 0)
	b := openPG(t, srv, dbURL, "wb", 0)
	var ids []pipeline.AccountID
	for _, u := range []string{"u1", "u2", "u3"} {
		res, err := a.ResolveAccount(ctx, testSpec(u))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Account)
	}
	if _, err := a.Enqueue(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pause(ctx, Selector{IDs: ids[2:]}, "hold"); err != nil {
		t.Fatal(err)
	}
	id, h, err := a.ClaimAmong(ctx, ids[1:2])
	if err != nil || id != ids[1] {
		t.Fatalf("ClaimAmong(%d) = %d, %v", ids[1], id, err)
	}
	if _, _, ok := TakenOver(h); ok {
		t.Error("a claim of a queued account says it took one over")
	}
	if _, _, err := b.ClaimAmong(ctx, ids[1:]); !errors.Is(err, ErrNothingToClaim) {
		t.Errorf("ClaimAmong of a running and a paused account: %v, want ErrNothingToClaim", err)
	}
	left, err := b.Left(ctx, nil)
	if err != nil || left != (QueueLeft{Queued: 1, Paused: 1, Running: 1}) {
		t.Errorf("Left = %+v, %v; want 1 queued, 1 paused, 1 running", left, err)
	}
	if left, err := b.Left(ctx, ids[:1]); err != nil || left != (QueueLeft{Queued: 1}) {
		t.Errorf("Left of the first account = %+v, %v; want 1 queued", left, err)
	}
	f, err := b.Fleet(ctx)
	if err != nil || len(f.Running) != 1 || f.Running[0].ID != ids[1] || f.Running[0].Worker != "wa" || f.Left.Running != 1 {
		t.Errorf("Fleet: %+v, %v; want account %d running on wa", f, err, ids[1])
	}
	if err := a.Requeue(h, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if left, err := b.Left(ctx, ids[1:2]); err != nil || left != (QueueLeft{Waiting: 1}) {
		t.Errorf("Left after Requeue for later = %+v, %v; want 1 waiting", left, err)
	}
	if _, _, err := b.ClaimAmong(ctx, ids[1:2]); !errors.Is(err, ErrNothingToClaim) {
		t.Errorf("claiming an account queued for later: %v, want ErrNothingToClaim", err)
	}
	if err := b.DueNow(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	id, hb, err := b.ClaimAmong(ctx, ids[1:2])
	if err != nil || id != ids[1] {
		t.Fatalf("claiming after DueNow: %d, %v", id, err)
	}
	// wb dies: its lease ran out 2 s ago.
	name, _ := dbName(dbURL)
	if err := srv.Exec(ctx, name, `UPDATE mailferry.accounts SET lease_expires = `+pgNow+` - 2000000000 WHERE id = $1`, int64(id)); err != nil {
		t.Fatal(err)
	}
	_, ha, err := a.ClaimAmong(ctx, ids[1:2])
	if err != nil {
		t.Fatalf("claiming an expired lease: %v", err)
	}
	if from, after, ok := TakenOver(ha); !ok || from != "wb" || after < 2*time.Second || after > time.Minute {
		t.Errorf("TakenOver = %q, %v, %v; want wb, about 2 s", from, after, ok)
	}
	if err := ha.Release(ctx); err != nil {
		t.Fatal(err)
	}
	_ = hb.Release(ctx)
	if err := b.Requeue(hb, time.Time{}); err == nil {
		t.Error("Requeue of a released hold succeeded")
	}
	// The status page's retry queues the idle account again, as Retry
	// does.
	if left, err := a.Left(ctx, ids[1:2]); err != nil || left != (QueueLeft{}) {
		t.Fatalf("Left after the release = %+v, %v; want nothing", left, err)
	}
	if _, err := a.RequestRetry(ctx, testSpec("u2").Endpoint); err != nil {
		t.Fatal(err)
	}
	if left, err := a.Left(ctx, ids[1:2]); err != nil || left != (QueueLeft{Queued: 1}) {
		t.Errorf("Left after RequestRetry = %+v, %v; want 1 queued", left, err)
	}
}
