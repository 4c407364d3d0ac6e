package account

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
)

// TestCappedSessionsAreTheAdapters: with max_connections on both sides the
// engine gets the adapters' own sessions, so every optional interface
// answers (flag sync and PERMANENTFLAGS filtering went silent behind the
// wrappers the caps used to be); the caps still hold, extra destination
// sessions do not wait, and closing a session gives its slots back.
func TestCappedSessionsAreTheAdapters(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-acsrc", CA: ca, Users: map[string]string{"alice": "sa"}})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-acdst", CA: ca, Users: map[string]string{"alice": "da"}})
	for _, proto := range []struct{ name, url string }{
		{"IMAP source", "imaps://" + src.IMAPSAddr()},
		{"POP3 source", "pop3s://" + src.POP3SAddr()},
	} {
		t.Run(proto.name, func(t *testing.T) {
			cfg := loadConfig(t, fmt.Sprintf(`[source]
url = %q
tls_ca = %q
max_connections = 1
[destination]
url = "imaps://%s"
tls_ca = %q
max_connections = 2
sessions = 2
[[account]]
source_user = "alice"
source_password = "sa"
dest_password = "da"
`, proto.url, src.CAFile(), dst.IMAPSAddr(), src.CAFile()))
			accs, err := NewSet(Options{}).FromConfig(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			job := accs[0].Job()
			ctx := t.Context()
			s, d, err := job.Open(ctx, pipeline.OpenOptions{})
			if err != nil {
				t.Fatalf("Job.Open: %v", err)
			}
			if _, ok := d.(*imapdst.Destination); !ok {
				t.Errorf("the destination is a %T, want *imapdst.Destination", d)
			}
			for name, ok := range map[string]bool{
				"FlagStorer":       is[pipeline.FlagStorer](d),
				"PermanentFlagser": is[pipeline.PermanentFlagser](d),
				"AppendStarter":    is[pipeline.AppendStarter](d),
				"Prefetcher":       is[pipeline.Prefetcher](s),
			} {
				if !ok {
					t.Errorf("%s lost with connection caps on", name)
				}
			}
			switch s.(type) {
			case *imapsrc.Source, *pop3src.Source:
			default:
				t.Errorf("the source is a %T, want the adapter's own", s)
			}
			if _, err := job.OpenExtraDestination(ctx); !errors.Is(err, ErrNoSlot) {
				t.Errorf("an extra session with the cap in use: %v, want ErrNoSlot", err)
			}
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err = job.OpenSource(short)
			cancel()
			if err == nil {
				t.Error("a second source session opened past max_connections = 1")
			}
			d.Close()
			s.Close(false)
			s2, err := job.OpenSource(ctx)
			if err != nil {
				t.Fatalf("the source's slot was not given back: %v", err)
			}
			s2.Close(false)
			d2, err := job.OpenExtraDestination(ctx)
			if err != nil {
				t.Fatalf("the destination's slots were not given back: %v", err)
			}
			d2.Close()
		})
	}
}

func is[T any](v any) bool {
	_, ok := v.(T)
	return ok
}
