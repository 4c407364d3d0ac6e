package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/peakrss"
)

// peer is another migration tool measured side by side with mailferry in
// the same trials, on the same servers, workloads and transport (issue 18,
// item 6): the figures of one run compare, those of two runs on this
// shared machine do not. Only tools Debian packages are measured:
// scripts/bench.sh installs them when missing.
type peer struct {
	name string
	bin  string // the program, looked up on PATH
	pkg  string // the Debian package that installs it
	// kinds are the source protocols it reads ("imap", "pop3"); plainOnly
	// those it reads only without TLS here.
	kinds, plainOnly []string
	// perMessageRoundTrip are the source protocols it reads a message per
	// round trip from: the fleet does not run it on those through
	// -fleet-delay's proxies (its single account alone would wait 40,000
	// round trips, 27 minutes at 40 ms).
	perMessageRoundTrip []string
	// note says how it stores the messages, for the table's reader.
	note string
	// command is the invocation that copies job's source INBOX into
	// job's destination user; it may write files under job.dir.
	command func(job peerJob) (*exec.Cmd, error)
}

// peerJob is one copy by a peer: where from, where to, and how.
type peerJob struct {
	dir              string // private to this run: config and state files
	kind             string // "imap" or "pop3"
	secure           bool   // implicit TLS on both sides, else plain text
	srcAddr, dstAddr string // host:port of the listeners for kind and transport
	srcUser, dstUser string
	srcPW, dstPW     string
	caFile           string // the CA that signed both servers' certificates
	dstConf          string // the destination Dovecot's dovecot.conf
}

// peers are the tools the bench knows how to run.
var peers = []*peer{{
	name:    "mbsync",
	bin:     "mbsync",
	pkg:     "isync",
	kinds:   []string{"imap"},
	note:    "isync's mbsync, IMAP to IMAP through both servers",
	command: mbsyncCommand,
}, {
	name:  "doveadm",
	bin:   "doveadm",
	pkg:   "dovecot-core",
	kinds: []string{"imap", "pop3"},
	// Dovecot 2.3.19's pop3c stalls over TLS: a RETR reply is waited
	// for until its 300 s timeout, then the copy fails ("Can't lookup
	// saved-date"), with PIPELINING or without, in most runs.
	plainOnly: []string{"pop3"},
	// pop3c sends RETR after RETR, each after the last reply.
	perMessageRoundTrip: []string{"pop3"},
	note:                "doveadm backup -R from imapc:/pop3c:, writing the destination's maildir itself (not through IMAP)",
	command:             doveadmCommand,
}}

func findPeer(name string) *peer {
	for _, p := range peers {
		if p.name == name {
			return p
		}
	}
	return nil
}

func peerNames() []string {
	var names []string
	for _, p := range peers {
		names = append(names, p.name)
	}
	return names
}

// reads reports whether p can read a source of kind, over TLS when secure.
func (p *peer) reads(kind string, secure bool) bool {
	return slices.Contains(p.kinds, kind) && !(secure && slices.Contains(p.plainOnly, kind))
}

// choosePeers resolves -peers: the tools asked for must be installed; with
// auto, those that are not are left out with a note saying how to add
// them.
func choosePeers(cfg config) (chosen []*peer, notes []string, err error) {
	names := cfg.peers
	if cfg.peersAuto {
		names = peerNames()
	}
	for _, name := range names {
		p := findPeer(name)
		if _, err := exec.LookPath(p.bin); err != nil {
			if !cfg.peersAuto {
				return nil, nil, fmt.Errorf("-peers %s: %s is not installed (Debian package %s; scripts/bench.sh installs it), or leave it out of -peers", name, p.bin, p.pkg)
			}
			notes = append(notes, fmt.Sprintf("%s not measured: %s is not installed (Debian package %s; scripts/bench.sh installs it).", name, p.bin, p.pkg))
			continue
		}
		chosen = append(chosen, p)
	}
	return chosen, notes, nil
}

// writePrivate writes a file only its owner can read: peers' configs hold
// the (random, per-run) passwords.
func writePrivate(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// mbsyncCommand pulls the source's INBOX into the destination's INBOX with
// mbsync (isync 1.4): new messages, their flags and their arrival dates
// (CopyArrivalDate: mailferry keeps internal dates too), nothing expunged.
func mbsyncCommand(job peerJob) (*exec.Cmd, error) {
	if job.kind != "imap" {
		return nil, fmt.Errorf("mbsync reads IMAP only, not %s", job.kind)
	}
	account := func(name, addr, user, pw string) (string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", err
		}
		tls := "SSLType None\n"
		if job.secure {
			// isync 1.4 checks the certificate's DNS names, not its IP
			// addresses: the test certificates name localhost too.
			host = "localhost"
			tls = "SSLType IMAPS\nCertificateFile " + job.caFile + "\n"
		}
		return fmt.Sprintf("IMAPAccount %[1]s\nHost %[2]s\nPort %[3]s\nUser %[4]s\nPass %[5]s\nAuthMechs LOGIN\n%[6]s\n"+
			"IMAPStore %[1]s\nAccount %[1]s\n\n", name, host, port, user, pw, tls), nil
	}
	src, err := account("source", job.srcAddr, job.srcUser, job.srcPW)
	if err != nil {
		return nil, err
	}
	dst, err := account("dest", job.dstAddr, job.dstUser, job.dstPW)
	if err != nil {
		return nil, err
	}
	state := filepath.Join(job.dir, "state") + "/"
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	rc := src + dst + "Channel bench\nFar :source:\nNear :dest:\nPatterns INBOX\nCreate Near\nSync Pull\nExpunge None\n" +
		"CopyArrivalDate yes\nSyncState " + state + "\n"
	path := filepath.Join(job.dir, "mbsyncrc")
	if err := writePrivate(path, rc); err != nil {
		return nil, err
	}
	return exec.Command("mbsync", "-c", path, "-q", "bench"), nil
}

// doveadmCommand copies with dsync the way Dovecot's migration guide does
// (doveadm backup -R -u USER imapc: or pop3c:): it reads the source as an
// imapc or pop3c mail storage and writes the destination user's maildir
// directly, in the destination Dovecot's configuration, which a file of
// its own includes with the source's settings (the password stays out of
// the command line). The guide's settings for speed are used
// (imapc_features = rfc822.size fetch-headers, mail_prefetch_count = 20),
// but not mail_fsync = never: the copy is as durable as what the
// destination server writes for mailferry and mbsync.
func doveadmCommand(job peerJob) (*exec.Cmd, error) {
	host, port, err := net.SplitHostPort(job.srcAddr)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "!include %s\n", job.dstConf)
	switch job.kind {
	case "imap":
		fmt.Fprintf(&b, "imapc_host = %s\nimapc_port = %s\nimapc_user = %s\nimapc_password = %s\n", host, port, job.srcUser, job.srcPW)
		b.WriteString("imapc_features = rfc822.size fetch-headers\nmail_prefetch_count = 20\n")
		if job.secure {
			b.WriteString("imapc_ssl = imaps\nimapc_ssl_verify = yes\n")
		} else {
			b.WriteString("imapc_ssl = no\n")
		}
	case "pop3":
		fmt.Fprintf(&b, "pop3c_host = %s\npop3c_port = %s\npop3c_user = %s\npop3c_password = %s\n", host, port, job.srcUser, job.srcPW)
		if job.secure {
			b.WriteString("pop3c_ssl = pop3s\npop3c_ssl_verify = yes\n")
		} else {
			b.WriteString("pop3c_ssl = no\n")
		}
	default:
		return nil, fmt.Errorf("doveadm cannot read %s", job.kind)
	}
	if job.secure {
		fmt.Fprintf(&b, "ssl_client_ca_file = %s\n", job.caFile)
	}
	path := filepath.Join(job.dir, "doveadm.conf")
	if err := writePrivate(path, b.String()); err != nil {
		return nil, err
	}
	return exec.Command("doveadm", "-c", path, "backup", "-R", "-u", job.dstUser, job.kind+"c:"), nil
}

// peerRun is one run of a peer: like mailferryRun, timed around the whole
// process.
type peerRun struct {
	wall       time.Duration
	peakRSSKB  int64
	cpuSeconds float64
	cpu        cpuUse
}

// runPeer runs p's copy of w on kind's path into a fresh destination user
// and checks that the destination's INBOX then holds every message. The
// user has no mail storage yet: dsync's backup -R from pop3c: or imapc:
// fails on a destination whose INBOX was made before ("INBOX can't be
// deleted"), and mbsync creates what it needs.
func (e *env) runPeer(ctx context.Context, p *peer, kind sourceKind, w *workload) (peerRun, error) {
	var r peerRun
	user, err := e.unusedDest()
	if err != nil {
		return r, err
	}
	defer e.dropDest(user)
	e.runs++
	dir := filepath.Join(e.dir, fmt.Sprintf("peer-%d", e.runs))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	cmd, err := p.command(peerJob{
		dir: dir, kind: kind.name, secure: e.secure,
		srcAddr: e.srcAddr(kind), dstAddr: e.dstAddr(),
		srcUser: w.name, dstUser: user, srcPW: e.srcPW, dstPW: e.dstPW,
		caFile: e.src.CAFile(), dstConf: e.dst.ConfigPath(),
	})
	if err != nil {
		return r, fmt.Errorf("%s: %w", p.name, err)
	}
	e.log.Info("running "+p.name, "workload", w.name, "path", e.pathName(kind), "command", strings.Join(cmd.Args, " "))
	r, err = e.measurePeer(ctx, cmd)
	if err != nil {
		return r, fmt.Errorf("%s on %s, %s: %w", p.name, w.name, e.pathName(kind), err)
	}
	n, err := e.dst.MailboxCount(user, "INBOX")
	if err != nil {
		return r, err
	}
	if n != len(w.msgs) {
		return r, fmt.Errorf("%s on %s, %s: the destination's INBOX holds %d messages, want %d", p.name, w.name, e.pathName(kind), n, len(w.msgs))
	}
	return r, nil
}

// measurePeer runs cmd, bounded by ctx, and records its wall time, peak RSS
// and the CPU time of each party meanwhile.
func (e *env) measurePeer(ctx context.Context, cmd *exec.Cmd) (peerRun, error) {
	before := e.cpu.snapshot()
	r, err := runChild(ctx, cmd)
	r.cpu = e.cpu.since(before, r.cpuSeconds)
	return r, err
}

// runChild runs cmd, bounded by ctx, and records its wall time, its peak
// RSS and its own CPU time (rusage); the error carries the end of its
// output.
func runChild(ctx context.Context, cmd *exec.Cmd) (peerRun, error) {
	var r peerRun
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	hwm := peakrss.Watch(cmd.Process.Pid)
	err := cmd.Wait()
	r.wall = time.Since(start)
	r.peakRSSKB = hwm()
	r.cpuSeconds = childCPU(cmd.ProcessState)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if err != nil {
		return r, fmt.Errorf("%w; output:\n%s", err, tail(out.String(), 20))
	}
	return r, nil
}

// row turns a peer's run of w into a table row.
func (r peerRun) row(w *workload, path string) row {
	out := row{Workload: w.name, Path: path, Kind: "peer"}.with(transfer{messages: len(w.msgs), bytes: w.bytes, elapsed: r.wall})
	out.PeakRSSMB = float64(r.peakRSSKB) / 1024
	if r.cpu.Wall > 0 {
		u := r.cpu
		out.CPU = &u
	}
	return out
}
