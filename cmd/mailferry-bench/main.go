// Command bench measures mailferry's speed and memory against real Dovecot
// servers on 127.0.0.1 (issue 6), and what the servers allow, in the same
// run, so that figures from a noisy shared machine are read as ratios.
//
// It starts a source and a destination Dovecot instance in a private temp
// directory, seeds two seeded workloads straight into the source's Maildir
// (small: 5,000 messages of 2–20 KB; mixed: about 1,000 messages and 300 MB,
// a few of 10–30 MB), builds ./cmd/mailferry once, and for each workload
// and each path (POP3 → IMAP, IMAP → IMAP) measures:
//
//   - the read ceiling: the source read by our POP3 client, one RETR at a
//     time and pipelined (RFC 2449 PIPELINING), or by go-imap's client,
//     one UID FETCH per message and one UID FETCH 1:* for all, into
//     io.Discard;
//   - the write ceiling: our IMAP appender alone storing the preloaded
//     messages, for each batch size (1 = plain APPEND, more = MULTIAPPEND,
//     RFC 3502) and number of parallel connections;
//   - mailferry copy pop3s://… imaps://… as a child process: wall time,
//     msgs/s, MB/s, peak RSS, and the ratio to min(read, write ceiling);
//   - a second run with nothing new;
//   - the latency scenario: the same copy through a proxy adding a one-way
//     delay (20 ms each way by default) in front of both servers, as a ratio
//     to the loopback figure.
//
// Every measured pass also records the CPU time each party spent: the
// client (this process for the ceilings, mailferry's process for its runs),
// the source and the destination Dovecot (the master and every process
// under it, found through DIR/run/master.pid), and the machine as a whole
// (/proc/stat). A second table lists them with the cores busy and the
// milliseconds per message; the summary after it gives, per workload and
// path, the medians of -trials repetitions, the serial ceiling
// 1/(1/R + 1/W) as an extra figure (the target stays min(R, W)), and the
// CPU bound: how fast the machine's cores allow the copy to go at the CPU
// time the source, the destination and mailferry need per message.
// -baseline-bin runs other mailferry binaries (e.g. built before a
// change) in the same trials, taking turns with the current one.
//
// Other tools run side by side with mailferry in every loopback trial
// (-peers, issue 18): isync's mbsync (IMAP → IMAP) and doveadm backup -R
// from imapc: and pop3c: (writing the destination's maildir directly); a
// last table gives mailferry's rate over each tool's per workload and path
// and the CPU milliseconds per MB each party spent. -tls off measures with
// TLS off on both sides (as the side-by-side figures were), -tls
// off,on both; -paths pop3 or imap measures one source protocol.
//
// Two more workloads run only when asked for (-workloads huge,rerun10k):
// huge is one message of -huge-mb (200 MB) moved on both paths, to show
// mailferry's peak RSS staying near the spool's memory bound; rerun10k is
// a POP3 mailbox of -rerun-count (10,000) messages copied, then copied
// again with nothing new, timing the ledger and listing path. So do flat
// (issue 20, flat.go) and incr (issue 18, incr.go: re-runs of a 50-folder,
// 100,000-message IMAP account with CONDSTORE, with nothing new and after
// flag changes, on loopback and at -delay each way) and fleet (issue 18,
// fleet.go: 200 accounts of 200 messages by one `mailferry run` with 8
// workers beside one account of the same messages, on loopback and at
// -fleet-delay each way, and a mixed batch's peak RSS).
//
// Usage:
//
//	go run ./cmd/mailferry-bench [-quick] [-trials N] [-tls on|off|off,on] [-peers auto|none|mbsync,doveadm] [-baseline-bin BIN,...] [-json FILE] [-profile DIR] [flags]
//
// Everything is bounded by -timeout; SIGINT stops the run, the servers and
// the temp directory.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the flags, runs the benchmark and returns the exit status:
// 0 done, 1 failed, 2 usage, 130 interrupted.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if err == errHelp {
			return 0
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := benchmark(runCtx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		if ctx.Err() != nil {
			return 130 // interrupted (SIGINT or SIGTERM)
		}
		return 1
	}
	return 0
}
