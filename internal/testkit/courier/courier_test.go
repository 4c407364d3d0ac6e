package courier

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

// TestSmoke starts two instances at once with a shared CA and checks IMAP
// and POP3 end to end, with a user added while the server runs.
func TestSmoke(t *testing.T) {
	Require(t)
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	servers := make([]*Server, 2)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			dir := mailserver.TempDir(t, "mfcou-")
			s, err := StartInstance(t.Context(), dir, Options{CA: ca, Users: map[string]string{"alice": "alice-pw"}})
			if err != nil {
				t.Errorf("starting Courier: %v", err)
				return
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("Courier instance %s:\n%s", s.Dir(), s.LogTail(30))
				}
				if err := s.Stop(); err != nil {
					t.Errorf("stopping Courier: %v", err)
				}
			})
			t.Logf("%s started in %v at %+v", s.Info(), time.Since(begin).Round(time.Millisecond), s.Endpoints())
			servers[i] = s
		}()
	}
	wg.Wait()
	for _, s := range servers {
		if s == nil {
			t.FailNow()
		}
	}
	for i, s := range servers {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			t.Parallel() // failed logins are answered after a delay of seconds
			if s.Info().Version == "" {
				t.Errorf("no package version recorded")
			}
			mailserver.SmokeIMAP(t, s, "alice", "alice-pw")
			if err := s.AddUser(context.Background(), "bob", "bob-pw"); err != nil {
				t.Fatal(err)
			}
			mailserver.SmokePOP3(t, s, "bob", "bob-pw")
		})
	}
}
