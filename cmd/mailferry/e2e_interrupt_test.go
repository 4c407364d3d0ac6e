package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
)

// interruptible is a copy of 400 messages through a proxy that slows the
// bytes going to the destination, so that batches are with the server when
// the signal comes: an APPEND of five messages takes about half a second.
type interruptible struct {
	p      *pair
	proxy  *faultproxy.Proxy
	served [][]byte
	args   []string
	report string
}

const interruptMessages = 400

func startInterruptible(t *testing.T, extra ...string) *interruptible {
	t.Helper()
	p := startPair(t)
	seed(t, p, simpleMessages(interruptMessages))
	x := &interruptible{p: p, served: sourceServed(t, p), proxy: startProxy(t, p.dst.IMAPSAddr())}
	if err := x.proxy.SetPlan(faultproxy.Plan{Faults: []faultproxy.Fault{
		{Kind: faultproxy.Slow, Dir: faultproxy.ClientToServer, BytesPerSecond: 4 << 10}}}); err != nil {
		t.Fatal(err)
	}
	x.report = filepath.Join(p.dir, "report.json")
	// The ledger knows the destination by the proxy's address: the re-run
	// goes through the same proxy, at full speed.
	x.args = append([]string{"copy", p.srcURL(), "imaps://alice@" + x.proxy.Addr(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--batch-messages", "5", "--report", x.report}, extra...)
	return x
}

// start runs the copy as a subprocess and returns once 20 messages are on
// the destination.
func (x *interruptible) start(t *testing.T) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], x.args...)
	cmd.Env = append(os.Environ(), "MAILFERRY_E2E_AS_MAIN=1",
		"MAILFERRY_SOURCE_PASSWORD="+srcPassword, "MAILFERRY_DEST_PASSWORD="+dstPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if n, _ := x.p.dst.MailboxCount("alice", "INBOX"); n >= 20 {
			return cmd, &stdout, &stderr
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("after 90 s fewer than 20 messages are on the destination\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits for cmd and returns its exit status and how long it took.
func waitExit(t *testing.T, cmd *exec.Cmd, since time.Time, limit time.Duration) (int, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return code, time.Since(since)
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running %v after the signal", limit)
	}
	return 0, 0
}

// resume runs the same command again at full speed and checks that it
// copies exactly the rest: the destination then holds every source
// message once.
func (x *interruptible) resume(t *testing.T, onDest int) runResult {
	t.Helper()
	if err := x.proxy.SetPlan(faultproxy.Plan{}); err != nil {
		t.Fatal(err)
	}
	r := runSubprocess(t, x.p, nil, append(x.args, "--json", "--progress", "none")...)
	tot := r.report.Totals
	if r.code != exitOK || tot.Copied+tot.Reconciled != interruptMessages-tot.AlreadyDone || tot.AlreadyDone+tot.Reconciled < onDest {
		t.Fatalf("re-run: exit %d, copied %d, already done %d, reconciled %d; want 0, and the %d on the destination found\n%s",
			r.code, tot.Copied, tot.AlreadyDone, tot.Reconciled, onDest, r.stderr)
	}
	assertSameMultiset(t, x.served, destBodies(destMessages(t, x.p, "INBOX")))
	return r
}

// TestE2EInterruptFinishesBatchesInFlight: the first SIGINT stops starting
// messages, lets the batches the destination is receiving finish and
// commit, prints the summary and exits 130 promptly. Nothing is pending in
// the ledger, nothing counts as failed, the untouched messages are "not
// yet copied" (summary, JSON report, status), and the same command run
// again copies exactly the rest.
func TestE2EInterruptFinishesBatchesInFlight(t *testing.T) {
	x := startInterruptible(t, "--progress", "lines")
	cmd, stdout, stderr := x.start(t)
	sent := time.Now()
	cmd.Process.Signal(os.Interrupt)
	code, took := waitExit(t, cmd, sent, 60*time.Second)
	t.Logf("exit %d %v after SIGINT\n%s", code, took.Round(time.Millisecond), stdout.String())
	if code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want %d\n%s\n%s", code, exitInterrupted, stdout.String(), stderr.String())
	}
	// Two sessions with at most two batches each in flight, at half a
	// second a batch; the limit is generous for a loaded machine.
	if took > 20*time.Second {
		t.Errorf("the run took %v to stop after SIGINT, want the batches in flight only", took)
	}
	b, err := os.ReadFile(x.report)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	tot := rep.Totals
	onDest := len(destMessages(t, x.p, "INBOX"))
	if rep.ExitCode != exitInterrupted || !rep.Interrupted || tot.Failed != 0 || tot.AccountsFailed != 0 {
		t.Errorf("report: exit_code %d, interrupted %v, failed %d, accounts_failed %d; want %d, true, 0, 0",
			rep.ExitCode, rep.Interrupted, tot.Failed, tot.AccountsFailed, exitInterrupted)
	}
	if tot.Copied != onDest || tot.NotYetCopied != interruptMessages-onDest || onDest >= interruptMessages {
		t.Errorf("report: copied %d, not yet copied %d; the destination holds %d of %d: every batch sent must be committed and counted\n%s",
			tot.Copied, tot.NotYetCopied, onDest, interruptMessages, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"interrupted: run the same command again to resume", " 0 failed", " not yet copied"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "error (") || strings.Contains(out, "context canceled") {
		t.Errorf("the summary reports the interrupt as an error:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "the batches in flight finish and are committed") {
		t.Errorf("stderr does not say what the interrupt does:\n%s", stderr.String())
	}

	// status: every entry committed, none pending or failed.
	st := runInProcess(t, x.p.getenv, "status", "--state", x.p.state, "--json")
	var sr statusReport
	if err := json.Unmarshal([]byte(st.stdout), &sr); err != nil || len(sr.Accounts) != 1 {
		t.Fatalf("status --json: %v\n%s%s", err, st.stdout, st.stderr)
	}
	a := sr.Accounts[0]
	if a.Pending != 0 || a.Failed != 0 || a.Done != onDest || a.LastRun == nil || a.LastRun.Result != "interrupted" || a.LastRun.Failed != 0 {
		t.Errorf("status: done %d, pending %d, failed %d, last run %+v; want %d done, none pending or failed, an interrupted run with 0 failed",
			a.Done, a.Pending, a.Failed, a.LastRun, onDest)
	}

	r := x.resume(t, onDest)
	if tot := r.report.Totals; tot.Reconciled != 0 || tot.AlreadyDone != onDest {
		t.Errorf("re-run: %d reconciled, %d already done; want 0 and %d (nothing was left pending)", tot.Reconciled, tot.AlreadyDone, onDest)
	}
}

// TestE2EInterruptTwice: a second SIGINT stops at once, with status 130;
// what was in flight is left for the next run, which reconciles it.
func TestE2EInterruptTwice(t *testing.T) {
	x := startInterruptible(t, "--progress", "none")
	cmd, stdout, stderr := x.start(t)
	cmd.Process.Signal(os.Interrupt)
	time.Sleep(50 * time.Millisecond)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	code, took := waitExit(t, cmd, sent, 30*time.Second)
	t.Logf("exit %d %v after the second SIGINT", code, took.Round(time.Millisecond))
	if code != exitInterrupted {
		t.Fatalf("exit %d after two SIGINTs, want %d\n%s\n%s", code, exitInterrupted, stdout.String(), stderr.String())
	}
	if took > 3*time.Second {
		t.Errorf("the second SIGINT took %v to stop the run, want at once", took)
	}
	if !strings.Contains(stderr.String(), "stopped at once") {
		t.Errorf("stderr does not say it stopped at once:\n%s", stderr.String())
	}
	// The bytes of an APPEND already on the network still reach the
	// server after the process is gone (here: the proxy's slow link).
	// Once they have, the next run finds that copy; one that landed later
	// still would be removed by a later run (pipeline's late copies).
	if !x.proxy.WaitIdle(30 * time.Second) {
		t.Fatal("the proxy still forwards the stopped run's bytes after 30 s")
	}
	x.resume(t, len(destMessages(t, x.p, "INBOX")))
}
