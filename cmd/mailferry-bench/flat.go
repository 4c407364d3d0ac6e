package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// The flat workload (issue 20): memory flat in the mailbox's size. For
// each size of -flat-sizes (5,000 and 500,000 messages by default) one
// source mailbox, read over POP3 and over IMAP, and one IMAP account of
// -flat-folders (50 folders of 10,000): the read ceiling, the write
// ceiling at that size, mailferry's first run (rate, peak RSS, its ratio
// to min(read, write ceiling)) and its run with nothing new; then the
// ledger's size per entry at -flat-ledger (1,000,000) entries, and the
// largest mailbox's no-op re-run and `mailferry status` in a ledger of
// that many entries (ledgerscale.go). The
// mailboxes are written straight into Maildir, one message at a time, and
// nothing here holds a whole mailbox either: messages are generated from
// their number when they are written and when they are appended.

// flatMessage is message i of a flat mailbox: 2 to 4 KB of text, made
// from its number alone.
func flatMessage(seed uint64, i int) []byte {
	g := newGenerator(seed, uint64(i)+1000)
	return g.plainMessage("flat", i, 2<<10+g.rng.IntN(2<<10)).data
}

// flatUser is the source user of a flat mailbox of n messages.
func flatUser(n int) string { return fmt.Sprintf("flat%d", n) }

// foldersUser is the source user of the many-folders account.
const foldersUser = "folders"

func flatFolder(i int) string { return fmt.Sprintf("Folder%02d", i) }

// seedFlat writes the flat mailboxes.
func (e *env) seedFlat() error {
	for _, n := range e.cfg.flatSizes {
		start := time.Now()
		if err := e.src.SeedMaildirBulk(flatUser(n), "INBOX", n, func(i int) []byte { return flatMessage(e.cfg.seed, i) }); err != nil {
			return err
		}
		if got, err := e.src.MailboxCount(flatUser(n), "INBOX"); err != nil || got != n {
			return fmt.Errorf("seeding %s: %d messages, %v", flatUser(n), got, err)
		}
		e.log.Info("seeded flat mailbox", "user", flatUser(n), "messages", n, "took", time.Since(start).Round(time.Second))
	}
	if f := e.cfg.flatFolders; f.count > 0 {
		start := time.Now()
		for k := range f.count {
			if err := e.src.SeedMaildirBulk(foldersUser, flatFolder(k), f.each, func(i int) []byte {
				return flatMessage(e.cfg.seed, k*f.each+i)
			}); err != nil {
				return err
			}
		}
		e.log.Info("seeded folders", "user", foldersUser, "folders", f.count, "each", f.each, "took", time.Since(start).Round(time.Second))
	}
	return nil
}

// flatResult is one mailbox on one path, for the flat summary.
type flatResult struct {
	path          string
	messages      int
	first, rerun  mailferryRun
	ceilingMBps   float64
	readMBps      float64
	writeMBps     float64
	ratio         float64
	ledgerBytes   int64
	ledgerEntries int64
	// ledger is the largest mailbox's ledger topped up to -flat-ledger
	// entries (issue 18, item 5); nil for the others.
	ledger *ledgerScale
	// probes are the POP3 source alone doing what the re-run with nothing
	// new asks of it, just before and just after that re-run (POP3 only).
	probes []uidlProbe
	// readCPU and writeCPU are the CPU seconds per message both parties
	// of each ceiling spent (client and server), firstCPU the three
	// parties' of mailferry's first run: cpuRatio is the rate to the
	// ceiling the cores alone would allow, max(readCPU, writeCPU) ÷
	// firstCPU, a ratio the machine's other work bends far less than
	// the wall clock's.
	readCPU, writeCPU, firstCPU float64
	cpuRatio                    float64
}

// flat runs the flat workload and prints its summary.
func (e *env) flat(ctx context.Context, out io.Writer) error {
	var results []flatResult
	writeCeiling := map[int]writeFigures{}
	for _, n := range e.cfg.flatSizes {
		user, err := e.freshDest()
		if err != nil {
			return err
		}
		before := e.cpu.snapshot()
		t, err := appendGenerated(ctx, e.dst.IMAPSAddr(), e.tlsCfg, user, secret.New(e.dstPW), destMailbox, n, func(i int) []byte {
			return flatMessage(e.cfg.seed, i)
		})
		t.cpu = e.cpu.since(before, -1)
		e.dropDest(user)
		if err != nil {
			return fmt.Errorf("write ceiling of %d messages: %w", n, err)
		}
		writeCeiling[n] = writeFigures{mbps: t.mbps(), cpu: (t.cpu.Client + t.cpu.Dest) / float64(max(t.messages, 1))}
		e.add(row{Workload: fmt.Sprint("flat ", n), Path: fmt.Sprintf("write IMAP batch %d × %d conns", flatBatch, flatConns), Kind: "write ceiling"}.with(t))
	}
	for _, n := range e.cfg.flatSizes {
		for _, kind := range sourceKinds {
			if !slices.Contains(e.cfg.paths, kind.name) {
				continue
			}
			r, err := e.flatRun(ctx, kind, flatUser(n), n, writeCeiling[n])
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	if f := e.cfg.flatFolders; f.count > 0 && slices.Contains(e.cfg.paths, "imap") {
		n := f.count * f.each
		wc, ok := writeCeiling[n]
		if !ok {
			wc = writeCeiling[e.cfg.flatSizes[len(e.cfg.flatSizes)-1]]
		}
		r, err := e.flatRun(ctx, sourceKinds[1], foldersUser, n, wc)
		if err != nil {
			return err
		}
		r.path = fmt.Sprintf("imap→imap, %d folders × %d", f.count, f.each)
		results = append(results, r)
	}
	var ledger *ledgerFigures
	if e.cfg.flatLedger > 0 {
		lf, err := measureLedger(ctx, filepath.Join(e.dir, "ledger-size.db"), e.cfg.flatLedger, e.log)
		if err != nil {
			return err
		}
		ledger = &lf
	}
	printFlat(out, results, ledger)
	return nil
}

// writeFigures are a write ceiling's rate and its CPU seconds per message
// (our appender and the destination).
type writeFigures struct{ mbps, cpu float64 }

// flatRun copies one flat mailbox twice on kind's path and measures the
// read ceiling.
func (e *env) flatRun(ctx context.Context, kind sourceKind, srcUser string, n int, write writeFigures) (flatResult, error) {
	name := fmt.Sprint("flat ", n)
	res := flatResult{path: kind.name + "→imap", messages: n, writeMBps: write.mbps, writeCPU: write.cpu}
	// The pipelined read ceiling of the path, over every folder.
	read := kind.ceilings[len(kind.ceilings)-1]
	before := e.cpu.snapshot()
	var t transfer
	var err error
	if srcUser == foldersUser {
		t, err = readFolders(ctx, e.srcAddr(kind), e.tlsCfg, srcUser, secret.New(e.srcPW), e.cfg.flatFolders.count)
	} else {
		t, err = read.read(ctx, e.srcAddr(kind), e.tlsCfg, srcUser, secret.New(e.srcPW))
	}
	t.cpu = e.cpu.since(before, -1)
	if err != nil {
		return res, fmt.Errorf("%s of %s: %w", read.name, srcUser, err)
	}
	if t.messages != n {
		return res, fmt.Errorf("%s of %s read %d messages, want %d", read.name, srcUser, t.messages, n)
	}
	res.readMBps = t.mbps()
	res.readCPU = (t.cpu.Client + t.cpu.Source) / float64(max(t.messages, 1))
	e.add(row{Workload: name, Path: read.name + " (" + srcUser + ")", Kind: "read ceiling"}.with(t))

	user, err := e.freshDest()
	if err != nil {
		return res, err
	}
	defer e.dropDest(user)
	e.runs++
	cmd := copyCommand{
		bin:       e.bin,
		sourceURL: kind.url(e.srcAddr(kind), srcUser, e.secure),
		destURL:   destURL(user, e.dst.IMAPSAddr(), kind, e.secure),
		caFile:    e.src.CAFile(),
		state:     filepath.Join(e.dir, fmt.Sprintf("state-%d.db", e.runs)),
		srcPW:     e.srcPW,
		dstPW:     e.dstPW,
		extra:     e.cfg.extra,
	}
	if srcUser == foldersUser {
		cmd.sourceURL = "imaps://" + srcUser + "@" + e.srcAddr(kind)
	}
	e.log.Info("running mailferry", "workload", name, "source", cmd.sourceURL, "dest", cmd.destURL)
	if res.first, err = e.measure(ctx, cmd); err != nil {
		return res, err
	}
	if res.first.copied != n {
		return res, fmt.Errorf("mailferry copied %d of %d messages of %s", res.first.copied, n, srcUser)
	}
	probe := func() error {
		if kind.name != "pop3" {
			return nil
		}
		p, err := e.probeUIDL(ctx, e.srcAddr(kind), e.clientTLS(), srcUser, secret.New(e.srcPW))
		if err == nil && p.lines != n {
			err = fmt.Errorf("UIDL of %s listed %d messages, want %d", srcUser, p.lines, n)
		}
		res.probes = append(res.probes, p)
		if err == nil {
			e.add(row{Workload: name, Path: res.path + " source alone: login, UIDL, QUIT", Kind: "uidl probe",
				Messages: p.lines, Seconds: p.total().Seconds(), CPU: &p.cpu})
		}
		return err
	}
	if err := probe(); err != nil {
		return res, err
	}
	if res.rerun, err = e.measure(ctx, cmd); err != nil {
		return res, err
	}
	if err := probe(); err != nil {
		return res, err
	}
	if res.rerun.copied != 0 || res.rerun.done != n {
		return res, fmt.Errorf("mailferry's second run over %s copied %d and found %d done, want 0 and %d", srcUser, res.rerun.copied, res.rerun.done, n)
	}
	res.ceilingMBps = min(res.readMBps, res.writeMBps)
	r := res.first.row(name, res.path, "mailferry")
	r.Ratio, r.RatioTo, r.CeilingMBPerSec = r.MBPerSec/res.ceilingMBps, "min(read, write ceiling)", res.ceilingMBps
	res.ratio = r.Ratio
	c := res.first.cpu
	if res.firstCPU = (c.Client + c.Source + c.Dest) / float64(n); res.firstCPU > 0 {
		res.cpuRatio = max(res.readCPU, res.writeCPU) / res.firstCPU
	}
	e.add(r)
	e.add(res.rerun.row(name, res.path+" again, nothing new", "mailferry rerun"))
	if l, err := checkpoint.Open(ctx, cmd.state, nil); err == nil {
		res.ledgerBytes, res.ledgerEntries, _ = l.Size(ctx)
		l.Close()
	}
	if srcUser == flatUser(slices.Max(e.cfg.flatSizes)) && e.cfg.flatLedger > n {
		if res.ledger, err = e.ledgerAtScale(ctx, cmd, n); err != nil {
			return res, err
		}
	}
	return res, nil
}

// readFolders is the batched IMAP read ceiling over count folders: one UID
// FETCH 1:* per folder.
func readFolders(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value, count int) (transfer, error) {
	start := time.Now()
	c, _, err := imapSession(ctx, addr, tlsCfg, user, pw)
	if err != nil {
		return transfer{}, err
	}
	defer c.Close()
	var all transfer
	for k := range count {
		if _, err := c.Select(flatFolder(k), &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return all, fmt.Errorf("EXAMINE %s: %w", flatFolder(k), err)
		}
		var all1 imap.UIDSet
		all1.AddRange(1, 0) // 1:*
		t, err := fetchBodies(c, all1)
		if err != nil {
			return all, fmt.Errorf("UID FETCH 1:* in %s: %w", flatFolder(k), err)
		}
		all.messages += t.messages
		all.bytes += t.bytes
	}
	c.Logout().Wait()
	all.elapsed = time.Since(start)
	return all, nil
}

// appendGenerated is the write ceiling for n generated messages: our
// appender alone, MULTIAPPEND batches of flatBatch on flatConns
// connections (the best of the small workload's ceilings), message i on
// connection i mod flatConns, each generated as it is sent (never all in
// memory). Connecting and logging in are not timed.
func appendGenerated(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value,
	mailbox string, n int, gen func(int) []byte) (transfer, error) {
	var as []*imapdst.Appender
	defer func() {
		for _, a := range as {
			a.Close()
		}
	}()
	for range flatConns {
		a, err := imapdst.DialAppender(ctx, imapdst.Options{Addr: addr, TLS: imapdst.TLSImplicit, TLSConfig: tlsCfg,
			User: user, Password: pw, MaxBatchMessages: flatBatch, MaxBatchBytes: 32 << 20})
		if err != nil {
			return transfer{}, fmt.Errorf("dialling IMAP appender %s as %s: %w", addr, user, err)
		}
		as = append(as, a)
	}
	start := time.Now()
	parts := make([]transfer, len(as))
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for k, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &parts[k]
			var part []pipeline.OutgoingMessage
			flush := func() error {
				res, err := a.Append(ctx, mailbox, part)
				if err != nil {
					return fmt.Errorf("appending to %s: %w", mailbox, err)
				}
				for _, r := range res {
					if r.Err != nil {
						return fmt.Errorf("appending to %s: %w", mailbox, r.Err)
					}
				}
				t.messages += len(part)
				part = part[:0]
				return nil
			}
			for i := k; i < n; i += len(as) {
				b := gen(i)
				part = append(part, pipeline.OutgoingMessage{Body: bytes.NewReader(b), Size: int64(len(b))})
				t.bytes += int64(len(b))
				if len(part) == 4*flatBatch {
					if errs[k] = flush(); errs[k] != nil {
						return
					}
				}
			}
			if len(part) > 0 {
				errs[k] = flush()
			}
		}()
	}
	wg.Wait()
	var t transfer
	for _, p := range parts {
		t.messages += p.messages
		t.bytes += p.bytes
	}
	t.elapsed = time.Since(start)
	return t, errors.Join(errs...)
}

// The flat workload's write ceiling: batches of 200 on 4 connections.
const (
	flatBatch = 200
	flatConns = 4
)

// ledgerFigures are the checkpoint's size and speed at a size.
type ledgerFigures struct {
	entries, accounts int
	bytes             int64
	build             time.Duration
	status            time.Duration
	lookup            time.Duration // every key of the largest account, a page at a time
	lookupKeys        int
	scan              time.Duration // Scan{KeysOnly} of the same account
}

// measureLedger builds a ledger of entries entries like a migration's (one
// IMAP account of a tenth of them in 50 folders, POP3 accounts of 100 for
// the rest; digests, Message-IDs, destination UIDs) through the
// checkpoint's own writes, and measures its size per entry, a status of
// every account, and reading the large account back.
func measureLedger(ctx context.Context, path string, entries int, log interface{ Info(string, ...any) }) (ledgerFigures, error) {
	f := ledgerFigures{entries: entries}
	os.Remove(path)
	l, err := checkpoint.Open(ctx, path, nil)
	if err != nil {
		return f, err
	}
	defer l.Close()
	start := time.Now()
	big := entries / 10
	bigSpec := checkpoint.AccountSpec{Endpoint: "imap://big@imap.old.example:993 -> imap://big@imap.new.example:993/",
		SourceProto: "imap", SourceUser: "big", DestUser: "big", KeyScheme: "imap"}
	if err := writeLedgerAccount(ctx, l, bigSpec, big, func(i int) string {
		return fmt.Sprintf("%s\x001700000000\x00%d", flatFolder(i%50), i/50+1)
	}, func(i int) string { return flatFolder(i % 50) }); err != nil {
		return f, err
	}
	f.accounts++
	n, err := padLedger(ctx, l, entries-big, (entries-big+99)/100, log)
	f.accounts += n
	if err != nil {
		return f, err
	}
	f.build = time.Since(start)
	if f.bytes, _, err = l.Size(ctx); err != nil {
		return f, err
	}
	start = time.Now()
	if _, err := l.Status(ctx, checkpoint.Selector{All: true}); err != nil {
		return f, err
	}
	f.status = time.Since(start)
	id, _, err := l.LookupAccount(ctx, bigSpec)
	if err != nil {
		return f, err
	}
	start = time.Now()
	keys := make([]string, 0, pipeline.MaxLookup)
	for i := 0; i < big; i++ {
		keys = append(keys, fmt.Sprintf("%s\x001700000000\x00%d", flatFolder(i%50), i/50+1))
		if len(keys) == pipeline.MaxLookup || i == big-1 {
			if err := l.Lookup(ctx, id, keys, func(pipeline.Entry) error { f.lookupKeys++; return nil }); err != nil {
				return f, err
			}
			keys = keys[:0]
		}
	}
	f.lookup = time.Since(start)
	start = time.Now()
	q := pipeline.Query{KeysOnly: true}
	for {
		_, next, err := l.Scan(ctx, id, q)
		if err != nil {
			return f, err
		}
		if next == "" {
			break
		}
		q.After = next
	}
	f.scan = time.Since(start)
	return f, nil
}

// writeLedgerAccount writes n done entries of an account like a
// migration's (digests, Message-IDs, destination UIDs; keys and folders
// from key and box) through the checkpoint's own commits, 1,000 at a time.
func writeLedgerAccount(ctx context.Context, l *checkpoint.Ledger, spec checkpoint.AccountSpec, n int, key func(int) string, box func(int) string) error {
	res, err := l.ResolveAccount(ctx, spec)
	if err != nil {
		return err
	}
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		return err
	}
	defer h.Release(ctx)
	digest := func(i int) string { return fmt.Sprintf("%016x%016x%016x%016x", i, i*7, i*13, i*31) }
	now := time.Now()
	for lo := 0; lo < n; lo += 1000 {
		var put []pipeline.Entry
		for i := lo; i < min(lo+1000, n); i++ {
			put = append(put, pipeline.Entry{Key: key(i), State: pipeline.StateDone, Digest: digest(i), Size: int64(2000 + i%3000),
				MessageID: fmt.Sprintf("<%d.%016x@mail.example.org>", i, i*2654435761), DestMailbox: box(i),
				DestUIDValidity: 1700000000, DestUID: uint32(i + 1), DestUIDNext: uint32(i + 1), Flags: []string{`\Seen`},
				Updated: now, DoneAt: now})
		}
		if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: put}); err != nil {
			return err
		}
	}
	return nil
}

// printProbes sets the source's part of the re-run with nothing new (the
// source alone, before and after it) beside mailferry's whole re-run.
func printProbes(w io.Writer, path string, r flatResult) {
	fmt.Fprintf(w, "  %-34s %7d messages: nothing new %.2f s wall, mailferry %.2f CPU-s, source %.2f CPU-s; "+
		"the source alone (login, UIDL, QUIT), before and after it:\n",
		path, r.messages, r.rerun.wall.Seconds(), r.rerun.cpuSeconds, r.rerun.cpu.Source)
	for _, p := range r.probes {
		fmt.Fprintf(w, "  %-34s %7s           %.2f s: login %.2f s, then UIDL's first byte %.2f s, last byte %.2f s, QUIT %.2f s; source %.2f CPU-s\n",
			"", "", p.total().Seconds(), p.login.Seconds(), p.firstByte.Seconds(), p.lastByte.Seconds(), p.quit.Seconds(), p.cpu.Source)
	}
}

// verdict says whether a target was met.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func printFlat(w io.Writer, results []flatResult, lf *ledgerFigures) {
	fmt.Fprintln(w, "\nFLAT MEMORY (issue 20)")
	byPath := map[string][]flatResult{}
	var paths []string
	for _, r := range results {
		if _, ok := byPath[r.path]; !ok {
			paths = append(paths, r.path)
		}
		byPath[r.path] = append(byPath[r.path], r)
	}
	for _, p := range paths {
		rs := byPath[p]
		for _, r := range rs {
			fmt.Fprintf(w, "  %-34s %7d messages: first run %7.1f s, %6.0f msgs/s, %.2f × min(read %.1f, write %.1f MB/s), peak RSS %5.1f MB; "+
				"nothing new %5.2f s, peak RSS %5.1f MB; checkpoint %.0f bytes/entry\n",
				p, r.messages, r.first.wall.Seconds(), float64(r.first.copied)/r.first.wall.Seconds(), r.ratio, r.readMBps, r.writeMBps,
				float64(r.first.peakRSSKB)/1024, r.rerun.wall.Seconds(), float64(r.rerun.peakRSSKB)/1024,
				float64(r.ledgerBytes)/float64(max(r.ledgerEntries, 1)))
			if len(r.probes) > 0 {
				printProbes(w, p, r)
			}
			if r.ledger != nil {
				printLedgerScale(w, p, r.messages, r.ledger)
			}
		}
		if len(rs) >= 2 {
			small, large := rs[0], rs[len(rs)-1]
			first := float64(large.first.peakRSSKB) / float64(small.first.peakRSSKB)
			rerun := float64(large.rerun.peakRSSKB) / float64(small.rerun.peakRSSKB)
			fmt.Fprintf(w, "  %-34s peak RSS %d vs %d messages: first run %.2f ×, nothing new %.2f × (target ≤ 1.25 ×, ≤ 80 MB); rate to ceiling %.2f → %.2f\n",
				p, large.messages, small.messages, first, rerun, small.ratio, large.ratio)
			for _, r := range []flatResult{small, large} {
				fmt.Fprintf(w, "  %-34s %7d messages: CPU ms per message: read ceiling %.3f, write ceiling %.3f, mailferry's first run %.3f "+
					"(mailferry %.3f, source %.3f, destination %.3f): the rate to ceiling the cores allow %.2f\n",
					p, r.messages, 1000*r.readCPU, 1000*r.writeCPU, 1000*r.firstCPU, 1000*r.first.cpu.Client/float64(r.messages),
					1000*r.first.cpu.Source/float64(r.messages), 1000*r.first.cpu.Dest/float64(r.messages), r.cpuRatio)
			}
			// The targets, each said met or missed (DECISIONS #14
			// adds the 80 MB cap and the 2 s no-op re-run at 500,000).
			peak := float64(max(large.first.peakRSSKB, large.rerun.peakRSSKB)) / 1024
			fmt.Fprintf(w, "  %-34s targets at %d: RSS ratio %s, peak RSS %.1f MB %s, rate to ceiling %s (by CPU per message: %s)",
				p, large.messages, verdict(max(first, rerun) <= 1.25), peak, verdict(peak <= 80), verdict(large.ratio >= small.ratio),
				verdict(large.cpuRatio >= small.cpuRatio))
			if strings.HasPrefix(p, "pop3") && large.messages >= 500000 {
				fmt.Fprintf(w, ", nothing new in %.2f s %s", large.rerun.wall.Seconds(), verdict(large.rerun.wall < 2*time.Second))
			}
			fmt.Fprintln(w)
		}
	}
	if lf != nil {
		fmt.Fprintf(w, "  checkpoint of %d entries over %d accounts: %.0f bytes per entry (%.0f MB), built in %.0f s; status of every account %.2f s; "+
			"Lookup of %d keys %.2f s (%.1f µs/key); Scan KeysOnly %.2f s\n",
			lf.entries, lf.accounts, float64(lf.bytes)/float64(lf.entries), float64(lf.bytes)/1e6, lf.build.Seconds(), lf.status.Seconds(),
			lf.lookupKeys, lf.lookup.Seconds(), lf.lookup.Seconds()*1e6/float64(max(lf.lookupKeys, 1)), lf.scan.Seconds())
	}
	fmt.Fprintf(w, "  %d CPUs, %s\n", runtime.NumCPU(), runtime.Version())
}
