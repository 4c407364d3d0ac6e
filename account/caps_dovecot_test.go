package account

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/internal/connlimit"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
)

// TestRefusedLowersUserCap: a Dovecot that allows a user 3 IMAP
// connections (mail_max_userip_connections; POP3: 1) refuses the next;
// the refusal is recognised on each side, lowers that user's cap to what
// the server was holding (the attempt is transient, not a failed account),
// and from then on no session asks the server for a slot it would refuse.
func TestRefusedLowersUserCap(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	limited := "protocol imap {\n  mail_max_userip_connections = 3\n}\nprotocol pop3 {\n  mail_max_userip_connections = 1\n}\n"
	src := dovecot.Start(t, dovecot.Options{Name: "mf-rlsrc", CA: ca, Users: map[string]string{"alice": "sa"}, ExtraConfig: limited})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-rldst", CA: ca, Users: map[string]string{"alice": "da"}, ExtraConfig: limited})
	for _, proto := range []struct{ name, url string }{
		{"IMAP source", "imaps://" + src.IMAPSAddr()},
		{"POP3 source", "pop3s://" + src.POP3SAddr()},
	} {
		t.Run(proto.name, func(t *testing.T) {
			cfg := loadConfig(t, fmt.Sprintf(`[source]
url = %q
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
source_user = "alice"
source_password = "sa"
dest_password = "da"
`, proto.url, src.CAFile(), dst.IMAPSAddr(), src.CAFile()))
			var log logBuffer
			set := NewSet(Options{Logger: log.logger()})
			accs, err := set.FromConfig(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			acc := accs[0]
			ctx := t.Context()
			// Destination sessions, one at a time, until the server
			// refuses one. Dovecot counts a user's connections once its
			// mail processes have registered them (anvil): a login racing
			// them can pass, so the refusal may come a session later than
			// the 4th connection; the cap is then what the server held.
			var sessions []*imapdst.Destination
			var cl *CapLoweredError
			for i := 0; i < 5 && cl == nil; i++ {
				d, err := acc.OpenDestination(ctx)
				if err == nil {
					sessions = append(sessions, d)
					settle()
					continue
				}
				if !errors.As(err, &cl) || pipeline.ClassOf(err) != pipeline.ClassTransient {
					t.Fatalf("destination session %d: %v (class %v), want a transient *CapLoweredError", i+1, err, pipeline.ClassOf(err))
				}
			}
			if cl == nil || len(sessions) == 0 {
				t.Fatalf("after %d destination sessions, no refusal", len(sessions))
			}
			if !refuses(cl.Err) {
				t.Errorf("the adapter's error does not classify itself as a refusal (connlimit.Refuser): %v", cl.Err)
			}
			if want := 2 * len(sessions); cl.Cap != want {
				t.Errorf("cap lowered to %d with %d sessions open, want %d", cl.Cap, len(sessions), want)
			}
			if used, size := set.limits.InUse(acc.dst.userKey); used != 2*len(sessions) || size != cl.Cap {
				t.Errorf("destination user's cap: %d in use of %d, want %d of %d", used, size, 2*len(sessions), cl.Cap)
			}
			if _, err := acc.OpenExtraDestination(ctx); !errors.Is(err, ErrNoSlot) {
				t.Errorf("an extra session under the lowered cap: %v, want ErrNoSlot without asking the server", err)
			}
			if !strings.Contains(log.String(), "lowering the per-user cap") {
				t.Errorf("no warning about the lowered cap in the log:\n%s", log.String())
			}
			for _, d := range sessions {
				d.Close()
			}
			// Source sessions likewise.
			var held []pipeline.Source
			cl = nil
			for i := 0; i < 5 && cl == nil; i++ {
				s, err := acc.OpenSource(ctx)
				if err == nil {
					held = append(held, s)
					settle()
					continue
				}
				if !errors.As(err, &cl) {
					t.Fatalf("source session %d: %v, want a *CapLoweredError", i+1, err)
				}
			}
			limit := 3
			if strings.HasPrefix(proto.url, "pop3") {
				limit = 1
			}
			if cl == nil || len(held) < limit {
				t.Fatalf("%d source sessions opened, refusal %v; want at least %d, then a refusal", len(held), cl, limit)
			}
			if !refuses(cl.Err) {
				t.Errorf("the source adapter's error does not classify itself as a refusal (connlimit.Refuser): %v", cl.Err)
			}
			if _, size := set.limits.InUse(acc.src.userKey); size != len(held) {
				t.Errorf("source user's cap lowered to %d, want %d", size, len(held))
			}
			for _, s := range held {
				s.Close(false)
			}
		})
	}
}

// settle gives Dovecot's anvil time to count the connections just made.
func settle() { time.Sleep(time.Second) }

// refuses reports whether an adapter's error classifies itself as a
// refusal for too many connections (not by its text alone).
func refuses(err error) bool {
	var r connlimit.Refuser
	return errors.As(err, &r) && r.TooManyConnections()
}
