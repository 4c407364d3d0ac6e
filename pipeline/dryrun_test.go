package pipeline

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sessionInterfaces lists every optional interface the engine asks a
// Source or Destination for, and what the dry-run wrappers must do with
// it. An interface asked for in the package's code but missing here fails
// TestDryRunKeepsOptionalInterfaces: a wrapper that embeds an interface
// hides it, and a dry run would then quietly do less than a real run
// reports (the flag sync did, once).
var sessionInterfaces = map[string]func(t *testing.T){
	"Prefetcher": func(t *testing.T) {
		src := &prefetchRecorder{memSource: &memSource{}}
		var s Source = dryRunSource{Source: src}
		p, ok := s.(Prefetcher)
		if !ok {
			t.Fatal("the dry-run source is no Prefetcher")
		}
		if err := p.Prefetch(context.Background(), []SourceMessage{{Key: "a"}}); err != nil || src.asked != 1 {
			t.Errorf("Prefetch through the dry run: %v, asked %d; want it passed on", err, src.asked)
		}
	},
	"ListSummarizer": func(t *testing.T) {
		src := &summarizingSource{memSource: &memSource{msgs: genMessages(3)}}
		ls, ok := Source(dryRunSource{Source: src}).(ListSummarizer)
		if !ok {
			t.Fatal("the dry-run source is no ListSummarizer")
		}
		if sum, ok, err := ls.ListSummary(context.Background(), true); err != nil || !ok || sum.Messages != 3 || src.summaries != 1 || !slices.Equal(src.thenList, []bool{true}) {
			t.Errorf("ListSummary through the dry run = %+v, %v, %v (thenList %v); want the real source's, asked with thenList", sum, ok, err, src.thenList)
		}
	},
	"FolderSummarizer": func(t *testing.T) {
		_, imapSrc := newIMAPHarness(t)
		src := &markingSource{imapLikeSource: imapSrc, listed: map[string]int{}}
		fs, ok := Source(dryRunSource{Source: src}).(FolderSummarizer)
		if !ok {
			t.Fatal("the dry-run source is no FolderSummarizer")
		}
		sums, ok, err := fs.FolderSummaries(context.Background())
		if err != nil || !ok || len(sums) != 3 {
			t.Errorf("FolderSummaries through the dry run = %+v, %v, %v; want the real source's", sums, ok, err)
		}
		fs.LeaveOut([]string{"Junk"})
		if !slices.Equal(src.leaveOut, []string{"Junk"}) {
			t.Errorf("LeaveOut through the dry run: the source leaves out %v, want Junk", src.leaveOut)
		}
	},
	"ChangeLister": func(t *testing.T) {
		src := &changeRecorder{memSource: &memSource{}}
		cl, ok := Source(dryRunSource{Source: src}).(ChangeLister)
		if !ok {
			t.Fatal("the dry-run source is no ChangeLister")
		}
		cl.ListChanges([]FolderSince{{Last: FolderSummary{Mailbox: "Big", UIDNext: 7}}})
		if len(src.since) != 1 || src.since[0].Last.Mailbox != "Big" {
			t.Errorf("ListChanges through the dry run: the source lists %+v by changes, want Big", src.since)
		}
		if got := cl.Changes(); len(got) != 1 || got[0].Mailbox != "Big" {
			t.Errorf("Changes through the dry run = %+v, want the real source's", got)
		}
		if got := Source(dryRunSource{Source: &memSource{}}).(ChangeLister).Changes(); got != nil {
			t.Errorf("Changes through the dry run of a source that cannot list by changes = %+v, want none", got)
		}
	},
	"PermanentFlagser": func(t *testing.T) {
		var d Destination = &dryRunDestination{Destination: &memDestSession{newMemDest()}}
		pf, ok := d.(PermanentFlagser)
		if !ok {
			t.Fatal("the dry-run destination is no PermanentFlagser")
		}
		got, err := pf.PermanentFlags(context.Background(), "INBOX")
		if err != nil || !slices.Contains(got, "$Forwarded") {
			t.Errorf("PermanentFlags through the dry run = %v, %v; want the real destination's", got, err)
		}
	},
	"DigestLister": func(t *testing.T) {
		md := newMatchingDest()
		seedDest(md.memDest, "INBOX", []byte("a"), []byte("bb"))
		real, _ := md.open(context.Background())
		dl, ok := Destination(&dryRunDestination{Destination: real}).(DigestLister)
		if !ok {
			t.Fatal("the dry-run destination is no DigestLister")
		}
		got, err := dl.Digests(context.Background(), "INBOX", 7, []uint32{1, 2})
		if err != nil || len(got) != 2 || md.batched != 1 {
			t.Errorf("Digests through the dry run = %v, %v (%d calls); want the real destination's", got, err, md.batched)
		}
	},
	"Holder": func(t *testing.T) {
		md := newMatchingDest()
		seedDest(md.memDest, "INBOX", []byte("a"), []byte("bb"))
		real, _ := md.open(context.Background())
		h, ok := Destination(&dryRunDestination{Destination: real}).(Holder)
		if !ok {
			t.Fatal("the dry-run destination is no Holder")
		}
		got, err := h.Holding(context.Background(), "INBOX", 7, []uint32{2, 9})
		if err != nil || len(got) != 1 || !got[2] {
			t.Errorf("Holding through the dry run = %v, %v; want UID 2, the real destination's", got, err)
		}
	},
	"HeaderLister": func(t *testing.T) {
		md := newMatchingDest()
		seedDest(md.memDest, "INBOX", []byte("Message-ID: <x@y>\r\n\r\nz\r\n"))
		real, _ := md.open(context.Background())
		hl, ok := Destination(&dryRunDestination{Destination: real}).(HeaderLister)
		if !ok {
			t.Fatal("the dry-run destination is no HeaderLister")
		}
		uv, got, err := hl.ListHeaders(context.Background(), "INBOX")
		if err != nil || uv != 7 || len(got) != 1 || got[0].MessageID != "<x@y>" {
			t.Errorf("ListHeaders through the dry run = %d, %v, %v; want the real destination's", uv, got, err)
		}
	},
	"FlagStorer": func(t *testing.T) {
		dst := newMemDest()
		dst.boxes["INBOX"] = &memMailbox{uidValidity: 1, uidNext: 2, msgs: []storedMsg{{uid: 1, flags: []string{`\Seen`}}}}
		dr := &dryRunDestination{Destination: &memDestSession{dst}}
		fs, ok := Destination(dr).(FlagStorer)
		if !ok || !dr.storesFlags() {
			t.Fatal("the dry-run destination does not answer for a FlagStorer")
		}
		if err := fs.StoreFlags(context.Background(), "INBOX", 1, map[uint32][]string{1: {`\Flagged`}}); err != nil {
			t.Fatal(err)
		}
		if got := dst.boxes["INBOX"].msgs[0].flags; !slices.Equal(got, []string{`\Seen`}) {
			t.Errorf("a dry run stored flags %v", got)
		}
	},
	"FolderNamer": func(t *testing.T) {
		src := &folderNamingSource{memSource: &memSource{}}
		fn, ok := Source(dryRunSource{Source: src}).(FolderNamer)
		if !ok {
			t.Fatal("the dry-run source is no FolderNamer")
		}
		if got, err := fn.FolderNames(context.Background()); err != nil || !slices.Equal(got, []string{"INBOX", "Archive"}) {
			t.Errorf("FolderNames through the dry run = %v, %v; want the real source's", got, err)
		}
	},
	"Mover": func(t *testing.T) {
		// Deliberately not kept: a dry run lists what it would move.
		if _, ok := Destination(&dryRunDestination{Destination: moverDest{}}).(Mover); ok {
			t.Error("the dry-run destination moves messages")
		}
	},
	"MailboxDeleter": func(t *testing.T) {
		// Deliberately not kept: a dry run lists what it would delete.
		if _, ok := Destination(&dryRunDestination{Destination: moverDest{}}).(MailboxDeleter); ok {
			t.Error("the dry-run destination deletes mailboxes")
		}
	},
	"Renamer": func(t *testing.T) {
		// Deliberately not kept: a dry run lists the moves a rename
		// makes, and renames nothing.
		if _, ok := Destination(&dryRunDestination{Destination: moverDest{}}).(Renamer); ok {
			t.Error("the dry-run destination renames mailboxes")
		}
	},
	"AppendStarter": func(t *testing.T) {
		// Deliberately not kept: a dry run sends nothing, so its batches
		// go through Append, which appends nothing.
		dst := newMemDest()
		dst.pipelined = &pipelining{ledger: newMemLedger()}
		real, _ := dst.open(context.Background())
		if _, ok := real.(AppendStarter); !ok {
			t.Fatal("the test destination is no AppendStarter")
		}
		if _, ok := Destination(&dryRunDestination{Destination: real}).(AppendStarter); ok {
			t.Error("the dry-run destination starts appends")
		}
	},
	"AppendPreparer": func(t *testing.T) {
		// Deliberately not kept: a dry run appends nothing, so it opens
		// nothing to append with (imapdst's APPEND connection).
		real, _ := newMemDest().open(context.Background())
		if _, ok := real.(AppendPreparer); !ok {
			t.Fatal("the test destination is no AppendPreparer")
		}
		if _, ok := Destination(&dryRunDestination{Destination: real}).(AppendPreparer); ok {
			t.Error("the dry-run destination prepares to append")
		}
	},
	"MailboxCreator": func(t *testing.T) {
		// Deliberately not kept: a dry run creates no folder, so it
		// names none as created (the engine asks the real session of
		// an attempt, and a dry run's sessions create nothing).
		dst := newMemDest()
		real, _ := dst.open(context.Background())
		dr := Destination(&dryRunDestination{Destination: creatingSession{real}})
		if _, ok := dr.(MailboxCreator); ok {
			t.Error("the dry-run destination names mailboxes as created")
		}
		st := &Stats{}
		st.noteCreated(dr)
		if len(st.FoldersCreated) != 0 {
			t.Errorf("a dry run reports folders created: %v", st.FoldersCreated)
		}
	},
}

type folderNamingSource struct{ *memSource }

func (folderNamingSource) FolderNames(context.Context) ([]string, error) {
	return []string{"INBOX", "Archive"}, nil
}

// moverDest is a destination that moves and deletes mailboxes.
type moverDest struct{ Destination }

func (moverDest) Move(context.Context, string, uint32, []uint32, string) (uint32, map[uint32]uint32, error) {
	return 0, nil, nil
}
func (moverDest) DeleteMailbox(context.Context, string) (bool, error) { return true, nil }

// creatingSession is a session that says it created a mailbox.
type creatingSession struct{ Destination }

func (creatingSession) CreatedMailboxes() []string { return []string{"Typo"} }

// errorInterfaces are asked of errors, not of sessions.
var errorInterfaces = []string{"Classifier", "RetryAfterer"}

// changeRecorder is a source that records ListChanges and names each
// folder it was given in Changes.
type changeRecorder struct {
	*memSource
	since []FolderSince
}

func (c *changeRecorder) ListChanges(since []FolderSince) { c.since = since }

func (c *changeRecorder) Changes() []FolderChanges {
	var out []FolderChanges
	for _, f := range c.since {
		out = append(out, FolderChanges{Mailbox: f.Last.Mailbox})
	}
	return out
}

type prefetchRecorder struct {
	*memSource
	asked int
}

func (p *prefetchRecorder) Prefetch(context.Context, []SourceMessage) error {
	p.asked++
	return nil
}

func TestDryRunKeepsOptionalInterfaces(t *testing.T) {
	for _, name := range askedInterfaces(t) {
		if slices.Contains(errorInterfaces, name) {
			continue
		}
		check, ok := sessionInterfaces[name]
		if !ok {
			t.Errorf("the engine asks for %s, which the dry-run wrappers do not answer for: add it to dryrun.go and sessionInterfaces", name)
			continue
		}
		t.Run(name, check)
	}
}

// askedInterfaces returns the interfaces of this package the engine's code
// (not its tests) asks for in type assertions: x.(Name).
func askedInterfaces(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	var asserted []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeSpec:
				if _, ok := n.Type.(*ast.InterfaceType); ok {
					declared[n.Name.Name] = true
				}
			case *ast.TypeAssertExpr:
				if id, ok := n.Type.(*ast.Ident); ok {
					asserted = append(asserted, id.Name)
				}
			}
			return true
		})
	}
	var out []string
	for _, name := range asserted {
		if declared[name] && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Fatal("found no type assertions: the parser is not reading the package")
	}
	return out
}

// TestDryRunReportsFlagSync: a dry run reports the flag updates a real
// run would make, and makes none.
func TestDryRunReportsFlagSync(t *testing.T) {
	h, src := newIMAPHarness(t)
	h.runWith(t, src)
	for k := range src.flags {
		src.flags[k] = []string{`\Seen`, `\Flagged`}
	}
	h.runner.DryRun = true
	st := h.runWith(t, src)
	if st.Copied != 0 || st.FlagsUpdated != 8 {
		t.Errorf("dry run: copied %d, flags updated %d; want 0 and 8 (what a real run would update)", st.Copied, st.FlagsUpdated)
	}
	for _, m := range h.dst.boxes["INBOX"].msgs {
		if slices.Contains(m.flags, `\Flagged`) {
			t.Errorf("the dry run stored flags: UID %d has %v", m.uid, m.flags)
		}
	}
	h.runner.DryRun = false
	if st := h.runWith(t, src); st.FlagsUpdated != 8 {
		t.Errorf("real run after the dry run updated %d flags, want 8", st.FlagsUpdated)
	}
}
