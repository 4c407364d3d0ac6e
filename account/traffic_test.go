package account

import (
	"slices"
	"testing"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/connlimit"
)

// TestCapsAndPresets: each side claims its server's cap, its user's cap
// (configured, else the provider's preset, else unlimited until a server
// refuses) and the run's; the command line's per-user cap wins; quotas
// come from the presets of the side's provider unless set or "off".
func TestCapsAndPresets(t *testing.T) {
	cfg := loadConfig(t, `max_connections_total = 12
[source]
url = "imaps://imap.gmail.com"
max_connections = 30
[destination]
url = "imaps://outlook.office365.com"
max_connections_per_user = 4
[[account]]
source_user = "alice@example.com"
source_password = "a"
dest_password = "b"
[[account]]
source_user = "bob@example.com"
source_password = "a"
dest_password = "b"
max_bytes_per_day_read = "off"
max_bytes_per_day_write = "1GB"
[[account]]
source_user = "carol@example.com"
source_password = "a"
dest_password = "b"
[account.source]
url = "imaps://imap.example.com"
`)
	accs, err := NewSet(Options{}).FromConfig(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	caps := func(d *side) []connlimit.Cap { return d.caps }
	alice, bob, carol := accs[0], accs[1], accs[2]
	wantSrc := []connlimit.Cap{{Key: "imap.gmail.com:993", Max: 30}, {Key: "user:imap.gmail.com:993/alice@example.com", Max: 15}, {Key: "run", Max: 12}}
	if got := caps(alice.src); !slices.Equal(got, wantSrc) {
		t.Errorf("alice's source caps %v, want %v", got, wantSrc)
	}
	wantDst := []connlimit.Cap{{Key: "user:outlook.office365.com:993/alice@example.com", Max: 4}, {Key: "run", Max: 12}}
	if got := caps(alice.dst); !slices.Equal(got, wantDst) {
		t.Errorf("alice's destination caps %v, want %v", got, wantDst)
	}
	if got := caps(carol.src); !slices.Contains(got, connlimit.Cap{Key: "user:imap.example.com:993/carol@example.com", Max: connlimit.Unlimited}) {
		t.Errorf("carol's source caps %v, want an unlimited user cap", got)
	}
	if q := alice.Options.Traffic.(interface{ String() string }).String(); q != alice.Options.Name+": read off, write off, messages off, quota read 2500000000 written 0" {
		t.Errorf("alice's traffic %s", q)
	}
	if q := bob.Options.Traffic.(interface{ String() string }).String(); q != bob.Options.Name+": read off, write off, messages off, quota read 0 written 1000000000" {
		t.Errorf("bob's traffic %s", q)
	}
	// The command line's cap wins.
	accs, err = NewSet(Options{MaxConnectionsPerUser: 2, Limits: config.Limits{BWLimitWrite: "1M"}}).FromConfig(cfg, []string{"alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := caps(accs[0].dst); got[0].Max != 2 {
		t.Errorf("with --max-connections-per-user 2: %v", got)
	}
	if q := accs[0].Options.Traffic.(interface{ String() string }).String(); q != accs[0].Options.Name+": read off, write 1M, messages off, quota read 2500000000 written 0" {
		t.Errorf("with --bwlimit-write: %s", q)
	}
}
