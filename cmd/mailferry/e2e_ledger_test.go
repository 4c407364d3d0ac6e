package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// ledgerConfig writes a config for the pair's alice with extra top-level
// and account keys, and returns its path.
func ledgerConfig(t *testing.T, p *pair, srcAddr, top, acct string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state = %q
%s
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
name = "alice"
%s
source_user = "alice"
source_password_env = "MAILFERRY_TEST_SRC_PW"
dest_password_env = "MAILFERRY_TEST_DST_PW"
`, p.state, top, srcAddr, p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), acct)
	path := filepath.Join(p.dir, "migrate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Secrets come from the process environment.
	t.Setenv("MAILFERRY_TEST_SRC_PW", srcPassword)
	t.Setenv("MAILFERRY_TEST_DST_PW", dstPassword)
	return path
}

func (p *pair) configEnv(string) string { return "" }

func statusOf(t *testing.T, getenv func(string) string, args ...string) statusReport {
	t.Helper()
	r := runInProcess(t, getenv, append([]string{"status", "--json"}, args...)...)
	if r.code != exitOK {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestE2ELedgerRetention: with delete_source, copied messages are gone from
// the source; the checkpoint keeps their entries (status counts them as
// gone) for ledger_retention, and the first run after that prunes them.
func TestE2ELedgerRetention(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(5))
	cfg := ledgerConfig(t, p, p.src.POP3SAddr(), "delete_source = true\nledger_retention = \"2s\"", "")
	r := runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none")
	if r.code != exitOK || r.report.Accounts[0].Copied != 5 || r.report.Accounts[0].Deleted != 5 {
		t.Fatalf("run: exit %d, %+v\n%s", r.code, r.report.Accounts, r.stderr)
	}
	// The run's report gives the checkpoint's size, as status does.
	if c := r.report.Checkpoint; c == nil || c.Entries != 5 || c.Bytes == 0 {
		t.Errorf("the run's report gives the checkpoint as %+v, want 5 entries of some bytes", c)
	}
	st := statusOf(t, p.configEnv, "-c", cfg)
	if a := st.Accounts[0]; a.Gone != 5 || a.Done != 0 || st.Entries != 5 || st.Size == 0 {
		t.Fatalf("status after deleting at the source: gone %d, done %d, %d entries of %d bytes; want 5, 0, 5, some", a.Gone, a.Done, st.Entries, st.Size)
	}
	text := runInProcess(t, p.configEnv, "status", "-c", cfg)
	if !strings.Contains(text.stdout, "5 copied messages since deleted at the source") || !strings.Contains(text.stdout, "5 entries") {
		t.Errorf("status text does not show the gone messages and the checkpoint's size:\n%s", text.stdout)
	}
	// Within the retention, a run keeps them.
	if r := runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none"); r.code != exitOK {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
	}
	if a := statusOf(t, p.configEnv, "-c", cfg).Accounts[0]; a.Gone != 5 {
		t.Errorf("within ledger_retention: gone %d, want 5 kept", a.Gone)
	}
	time.Sleep(2500 * time.Millisecond)
	r = runInProcess(t, p.configEnv, "run", "-c", cfg, "--progress", "none")
	if r.code != exitOK {
		t.Fatalf("third run: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "checkpoint: ") || !strings.Contains(r.stdout, ", 0 entries") {
		t.Errorf("the third run's text report does not give the pruned checkpoint's size:\n%s", r.stdout)
	}
	st = statusOf(t, p.configEnv, "-c", cfg)
	if a := st.Accounts[0]; a.Gone != 0 || st.Entries != 0 {
		t.Errorf("after ledger_retention: gone %d, %d entries; want them pruned", a.Gone, st.Entries)
	}
}

// TestE2EAccountID: with an id, an account keeps its history when its
// server is reached under another address (here 127.0.0.1 and localhost):
// the second run copies nothing; without an id it would start afresh.
func TestE2EAccountID(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(4))
	byIP := p.src.POP3SAddr()
	_, port, _ := strings.Cut(byIP, ":")
	byName := "localhost:" + port
	cfg := ledgerConfig(t, p, byIP, "", `id = "alice-2026"`)
	r := runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none")
	if r.code != exitOK || r.report.Accounts[0].Copied != 4 {
		t.Fatalf("first run: exit %d, %+v\n%s", r.code, r.report.Accounts, r.stderr)
	}
	// The server is renamed: the id still names the account.
	cfg = ledgerConfig(t, p, byName, "", `id = "alice-2026"`)
	r = runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none")
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 0 || a.AlreadyDone != 4 {
		t.Fatalf("after the rename: exit %d, copied %d, already done %d; want 0, 4\n%s", r.code, a.Copied, a.AlreadyDone, r.stderr)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 4 {
		t.Errorf("destination holds %d, want 4", n)
	}
	// status -c finds it under the new address too, by its id.
	if a := statusOf(t, p.configEnv, "-c", cfg).Accounts[0]; a.Done != 4 || a.NeverRun {
		t.Errorf("status after the rename: %+v", a)
	}
	// Another destination folder without an id is another account (Other
	// is a new top-level folder: created as the config allows)...
	cfg = ledgerConfig(t, p, byIP, "create_folders = true", `dest_folder = "Other"`)
	r = runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none")
	if r.code != exitOK || r.report.Accounts[0].Copied != 4 {
		t.Fatalf("another folder: exit %d, %+v\n%s", r.code, r.report.Accounts, r.stderr)
	}
	// ...so a config whose id names the first and whose servers name the
	// second is refused before anything is copied.
	cfg = ledgerConfig(t, p, byIP, "", "id = \"alice-2026\"\ndest_folder = \"Other\"")
	r = runInProcess(t, p.configEnv, "run", "-c", cfg, "--json", "--progress", "none")
	if r.code != exitUsage || !strings.Contains(r.stderr, "two different accounts") {
		t.Errorf("conflicting id: exit %d, want %d and the conflict named\n%s", r.code, exitUsage, r.stderr)
	}
}

// sourceFolderRecords returns the names of the source folder records the
// ledger at state keeps for its only account, and their ops.
func sourceFolderRecords(t *testing.T, state string) map[string]pipeline.FolderOp {
	t.Helper()
	ctx := context.Background()
	l, err := checkpoint.Open(ctx, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := l.StatusWithoutHolders(ctx, checkpoint.Selector{All: true})
	if err != nil || len(st) != 1 {
		t.Fatalf("status of %s: %d accounts, %v; want 1", state, len(st), err)
	}
	fs, err := l.Folders(ctx, st[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]pipeline.FolderOp{}
	for _, f := range fs {
		if f.Side == pipeline.SourceSide {
			out[f.Name] = f.Op
		}
	}
	return out
}

// TestE2ESourceFolderRecordsPruned: folders deleted at a Dovecot source
// lose their records once no entry is in them (issue 18: nothing grows
// without bound): an empty one at the next run; one with copies while its
// entries stay (done without mirror; removed with it, until
// ledger_retention). Folders of those names created again later are
// copied as new ones: nothing twice, nothing lost.
func TestE2ESourceFolderRecordsPruned(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra []string
		// after the deletions: the records kept, the destination's folders
		records  map[string]pipeline.FolderOp
		dstBoxes []string
		// the folders created again, with the messages seeded into each
		// (mirrorMessage's numbers), and what the destination then holds
		back map[string][]int
		end  map[string]int
	}{
		{"copy", nil, map[string]pipeline.FolderOp{"INBOX": "", "Old": ""}, []string{"Empty", "INBOX", "Old"},
			map[string][]int{"Empty": {7}, "Old": {7}}, map[string]int{"INBOX": 3, "Empty": 1, "Old": 3}},
		// Old's record (its destination folder deleted) stays while its
		// removed entries do: Old created again before ledger_retention
		// (a new UIDVALIDITY) is a new folder all the same, not one
		// mirror "cannot tell" (docs/mirror.md, "A folder created
		// again"). Message 0 has the bytes of a copy mirror removed: it
		// is copied again.
		{"mirror", []string{"--mirror"}, map[string]pipeline.FolderOp{"INBOX": "", "Old": pipeline.FolderDeleted}, []string{"INBOX"},
			map[string][]int{"Empty": {7}, "Old": {0, 7}}, map[string]int{"INBOX": 3, "Empty": 1, "Old": 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := imapPair(t)
			base := time.Date(2021, 5, 1, 9, 0, 0, 0, time.UTC)
			for folder, n := range map[string]int{"INBOX": 3, "Old": 2} {
				for i := range n {
					if err := p.src.SeedMaildir("alice", folder, mirrorMessage(folder, i), "S", base.Add(time.Duration(i)*time.Minute)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := p.src.CreateMailbox("alice", "Empty"); err != nil {
				t.Fatal(err)
			}
			if r := runInProcess(t, p.getenv, p.imapCopyArgs(c.extra...)...); r.code != exitOK || r.report.Accounts[0].Copied != 5 {
				t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
			}
			if got, want := sourceFolderRecords(t, p.state), map[string]pipeline.FolderOp{"INBOX": "", "Old": "", "Empty": ""}; !maps.Equal(got, want) {
				t.Fatalf("source folder records after the first run: %v, want %v", got, want)
			}
			src := imapLogin(t, p.src, srcPassword)
			for _, f := range []string{"Empty", "Old"} {
				if err := src.Delete(f).Wait(); err != nil {
					t.Fatal(err)
				}
			}
			r := runInProcess(t, p.getenv, p.imapCopyArgs(c.extra...)...)
			if r.code != exitOK || r.report.Accounts[0].Copied != 0 {
				t.Fatalf("run after the deletions: exit %d, copied %d; want 0, 0\n%s", r.code, r.report.Accounts[0].Copied, r.stderr)
			}
			if got := sourceFolderRecords(t, p.state); !maps.Equal(got, c.records) {
				t.Errorf("source folder records after the deletions: %v, want %v", got, c.records)
			}
			boxes, err := p.dst.Mailboxes("alice")
			if err != nil {
				t.Fatal(err)
			}
			if slices.Sort(boxes); !slices.Equal(boxes, c.dstBoxes) {
				t.Errorf("destination folders after the deletions: %q, want %q", boxes, c.dstBoxes)
			}
			// They come back, with new messages: exactly those are copied.
			seeded := 0
			for f, nums := range c.back {
				for _, i := range nums {
					if err := p.src.SeedMaildir("alice", f, mirrorMessage(f, i), "", base); err != nil {
						t.Fatal(err)
					}
					seeded++
				}
			}
			r = runInProcess(t, p.getenv, p.imapCopyArgs(c.extra...)...)
			if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != seeded || a.Removed != 0 || len(a.MirrorUnsure) != 0 {
				t.Fatalf("run after the folders came back: exit %d, copied %d, removed %d, cannot tell %v; want 0, %d, 0, none\n%s",
					r.code, a.Copied, a.Removed, a.MirrorUnsure, seeded, r.stderr)
			}
			want := maps.Clone(c.records)
			for f := range c.back {
				want[f] = ""
			}
			if got := sourceFolderRecords(t, p.state); !maps.Equal(got, want) {
				t.Errorf("source folder records after the folders came back: %v, want %v", got, want)
			}
			for box, want := range c.end {
				if n := len(destMessages(t, p, box)); n != want {
					t.Errorf("destination %s holds %d messages, want %d", box, n, want)
				}
			}
			if r := runInProcess(t, p.getenv, p.imapCopyArgs(c.extra...)...); r.code != exitOK || r.report.Accounts[0].Copied != 0 {
				t.Fatalf("a run after: exit %d, copied %d; want nothing\n%s", r.code, r.report.Accounts[0].Copied, r.stderr)
			}
		})
	}
}
