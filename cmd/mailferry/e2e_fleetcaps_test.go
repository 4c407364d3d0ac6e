package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/internal/testkit/postgres"
)

// TestE2EPostgresFleetCaps: three mailferry processes (a fleet of three
// workers, two accounts at a time each) on one PostgreSQL checkpoint copy
// six POP3 accounts from one Dovecot through a counting proxy with the
// source's max_connections = 2: the proxy never sees more than 2
// connections at once, the processes that waited for the fleet's cap say
// so, and every account is copied exactly once. Without a shared
// checkpoint (three processes, each its own SQLite checkpoint and its own
// two accounts) the same cap holds per process only and the proxy sees
// more: the count can tell.
func TestE2EPostgresFleetCaps(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 1; i <= 6; i++ {
		users[fmt.Sprintf("u%d", i)] = "pw"
	}
	src := dovecot.Start(t, dovecot.Options{Name: "mf-fcsrc", CA: ca, Users: users})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-fcdst", CA: ca, Users: users})
	pg := postgres.Start(t, postgres.Options{})
	proxy := startProxy(t, src.POP3SAddr())
	served := map[string][][]byte{}
	for u := range users {
		msgs := simpleMessages(40)
		for i, m := range msgs {
			m = append([]byte("X-Owner: "+u+"\r\n"), m...)
			if err := src.SeedMaildir(u, "INBOX", m, "", time.Date(2020, 1, 1, 0, i, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			served[u] = append(served[u], crlf(m))
		}
	}
	// config writes a config of the given accounts; each copies into its
	// own folder of the same user on the destination.
	config := func(state, folder string, accounts ...int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "state = %q\nworkers = 2\non_locked = \"skip\"\ncreate_folders = true\n[source]\nurl = \"pop3s://%s\"\ntls_ca = %q\nmax_connections = 2\n[destination]\nurl = \"imaps://%s\"\ntls_ca = %q\nbatch_messages = 4\n",
			state, proxy.Addr(), src.CAFile(), dst.IMAPSAddr(), src.CAFile())
		for _, i := range accounts {
			fmt.Fprintf(&b, "[[account]]\nsource_user = \"u%d\"\nsource_password = \"pw\"\ndest_user = \"u%d\"\ndest_password = \"pw\"\ndest_folder = \"%s\"\n", i, i, folder)
		}
		path := filepath.Join(t.TempDir(), "migrate.toml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// fleet runs three processes at once, the ith with configs[i].
	fleet := func(t *testing.T, configs []string) []runResult {
		t.Helper()
		if err := proxy.SetPlan(faultproxy.Plan{}); err != nil {
			t.Fatal(err)
		}
		env := []string{statePasswordEnv + "=" + pg.Password()}
		results := make(chan runResult, len(configs))
		for _, c := range configs {
			go func() { results <- runSubprocess(t, nil, env, "run", "-c", c, "--json", "--progress", "none") }()
		}
		var out []runResult
		copied := 0
		for range configs {
			r := <-results
			if r.code != exitOK {
				t.Fatalf("a worker exited %d:\n%s", r.code, r.stderr)
			}
			copied += r.report.Totals.Copied
			out = append(out, r)
		}
		if copied != 240 {
			t.Errorf("the workers copied %d messages in all, want 240 (6 accounts of 40)", copied)
		}
		proxy.WaitIdle(10 * time.Second)
		return out
	}

	t.Run("fleet", func(t *testing.T) {
		cfg := config(postgres.Database(t, pg), "Fleet", 1, 2, 3, 4, 5, 6)
		rs := fleet(t, []string{cfg, cfg, cfg})
		peak := proxy.MaxOpen(20 * time.Millisecond)
		t.Logf("three workers on one PostgreSQL checkpoint: at most %d source connections at once (%d in all)", peak, proxy.Conns())
		if peak > 2 {
			t.Errorf("the source saw %d connections at once, max_connections = 2 across the fleet", peak)
		}
		waited := 0
		for _, r := range rs {
			if n := strings.Count(r.stderr, "the fleet-wide cap is reached"); n > 0 {
				waited++
			}
		}
		if waited == 0 {
			t.Error("no worker logged that it waited for the fleet-wide cap")
		}
		for u, want := range served {
			assertSameMultiset(t, want, destBodies(destMessagesOf(t, dst, u, "pw", "Fleet")))
		}
	})
	t.Run("per process", func(t *testing.T) {
		dir := t.TempDir()
		rs := fleet(t, []string{
			config(filepath.Join(dir, "a.db"), "Alone", 1, 2),
			config(filepath.Join(dir, "b.db"), "Alone", 3, 4),
			config(filepath.Join(dir, "c.db"), "Alone", 5, 6),
		})
		_ = rs
		peak := proxy.MaxOpen(20 * time.Millisecond)
		t.Logf("three processes, each its own SQLite checkpoint: at most %d source connections at once", peak)
		if peak <= 2 {
			t.Errorf("three processes with their own checkpoints held only %d connections at once: the count cannot tell", peak)
		}
		for u, want := range served {
			assertSameMultiset(t, want, destBodies(destMessagesOf(t, dst, u, "pw", "Alone")))
		}
	})
}
