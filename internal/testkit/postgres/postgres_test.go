package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestStartSeveral starts two instances at once: each on its own port,
// each with a password login for the mailferry role, refusing a wrong
// password; the server does not run as root.
func TestStartSeveral(t *testing.T) {
	var wg sync.WaitGroup
	servers := make([]*Server, 2)
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i] = Start(t, Options{})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if servers[0].Addr() == servers[1].Addr() {
		t.Fatalf("both instances on %s", servers[0].Addr())
	}
	ctx := context.Background()
	for _, s := range servers {
		if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
			t.Errorf("listening on %s, want loopback", s.Addr())
		}
		name, _, err := s.CreateDatabase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.connect(ctx, Role, name)
		if err != nil {
			t.Fatalf("connecting as %s: %v", Role, err)
		}
		var super bool
		if err := c.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || super {
			t.Errorf("role %s: superuser %v, %v", Role, super, err)
		}
		c.Close(ctx)
		uid, err := s.QueryInt(ctx, "postgres", `SELECT count(*) FROM pg_stat_activity`)
		if err != nil || uid < 1 {
			t.Errorf("pg_stat_activity: %d, %v", uid, err)
		}
		wrong := &Server{dir: s.dir, port: s.port, password: "wrong"}
		if c, err := wrong.connect(ctx, Role, name); err == nil {
			c.Close(ctx)
			t.Errorf("a wrong password was accepted")
		}
	}
}
