package cyrus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

// TestSmoke starts two instances at once, one per namespace, sharing a CA,
// and checks IMAP and POP3 on each end to end.
func TestSmoke(t *testing.T) {
	Require(t)
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	specs := []Options{
		{Separator: ".", CA: ca, Users: map[string]string{"alice": "alice-pw"}},
		{Separator: "/", CA: ca, Users: map[string]string{"alice": "other-pw"}},
	}
	servers := make([]*Server, len(specs))
	var wg sync.WaitGroup
	for i, opts := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			servers[i] = startNoFatal(t, opts)
			t.Logf("separator %q: started in %v", opts.Separator, time.Since(begin).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	for i, s := range servers {
		if s == nil {
			t.FailNow()
		}
		t.Run("sep"+map[string]string{".": "dot", "/": "slash"}[specs[i].Separator], func(t *testing.T) {
			t.Parallel() // failed logins are answered after a delay of seconds
			t.Logf("%s at %+v", s.Info(), s.Endpoints())
			if s.Info().Version == "" {
				t.Errorf("no package version recorded")
			}
			pw := specs[i].Users["alice"]
			mailserver.SmokeIMAP(t, s, "alice", pw)
			if err := s.AddUser(context.Background(), "bob", "bob-pw"); err != nil {
				t.Fatal(err)
			}
			mailserver.SmokePOP3(t, s, "bob", "bob-pw")
		})
	}
}

// startNoFatal is Start for use from a goroutine: it reports with Errorf.
func startNoFatal(t *testing.T, opts Options) *Server {
	dir := mailserver.TempDir(t, "mfcyr-")
	s, err := StartInstance(t.Context(), dir, opts)
	if err != nil {
		t.Errorf("starting Cyrus: %v", err)
		return nil
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Cyrus instance %s:\n%s", s.Name(), s.LogTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping Cyrus: %v", err)
		}
	})
	return s
}
