package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/peakrss"
)

// buildMailferry compiles ./cmd/mailferry once into dir and returns the
// binary's path, so that every run measures the same program and not the
// compiler.
func buildMailferry(ctx context.Context, dir string) (string, error) {
	return buildMailferryTagged(ctx, dir, "mailferry", "")
}

// buildMailferryTagged compiles ./cmd/mailferry into dir/name with the
// build tags tags ("" none).
func buildMailferryTagged(ctx context.Context, dir, name, tags string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", tags, "-o", bin, "github.com/mailferry/mailferry/cmd/mailferry")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building mailferry: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return bin, nil
}

// mailferryRun is one `mailferry copy` as a child process.
type mailferryRun struct {
	wall      time.Duration
	seconds   float64 // what mailferry's JSON report says it took
	copied    int
	done      int // already_done: copied by an earlier run
	bytes     int64
	accounts  int // accounts the report counts (mailferry run)
	peakRSSKB int64
	// cpuSeconds is the process's user and system time (its rusage);
	// cpu is filled in by the caller with the servers' time around it.
	cpuSeconds float64
	cpu        cpuUse
}

// mailferryReport is the part of `mailferry copy --json` the bench reads.
type mailferryReport struct {
	ExitCode int `json:"exit_code"`
	Totals   struct {
		Accounts    int     `json:"accounts"`
		Copied      int     `json:"copied"`
		AlreadyDone int     `json:"already_done"`
		Skipped     int     `json:"skipped"`
		Failed      int     `json:"failed"`
		Bytes       int64   `json:"bytes"`
		Seconds     float64 `json:"seconds"`
	} `json:"totals"`
	Accounts []struct {
		Error string `json:"error"`
	} `json:"accounts"`
}

// copyCommand is one mailferry invocation: its URLs and state file.
type copyCommand struct {
	bin       string
	sourceURL string
	destURL   string
	caFile    string
	state     string
	srcPW     string
	dstPW     string
	extra     []string // more flags, e.g. --batch-messages 200
	plain     bool     // the URLs say ?tls=none: --allow-plaintext
}

// run starts mailferry, waits for it and reads its JSON report and resource
// usage. Cancelling ctx interrupts it with SIGINT (mailferry commits and
// exits 130), then kills it after 15 s.
func (c copyCommand) run(ctx context.Context) (mailferryRun, error) {
	args := append([]string{"copy", c.sourceURL, c.destURL, "--tls-ca", c.caFile, "--state", c.state,
		"--json", "--progress", "none"}, c.extra...)
	if c.plain {
		args = append(args, "--allow-plaintext")
	}
	return runMailferry(ctx, c.bin, args, []string{"MAILFERRY_SOURCE_PASSWORD=" + c.srcPW, "MAILFERRY_DEST_PASSWORD=" + c.dstPW},
		fmt.Sprintf("mailferry copy %s %s", c.sourceURL, c.destURL))
}

// runMailferry runs bin with args (which must ask for --json) and env added
// to this process's environment, waits for it and reads its JSON report and
// resource usage; what names the run in errors. Cancelling ctx interrupts it
// with SIGINT (mailferry commits and exits 130), then kills it after 15 s.
func runMailferry(ctx context.Context, bin string, args, env []string, what string) (mailferryRun, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	var r mailferryRun
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("starting %s: %w", bin, err)
	}
	// Peak RSS from /proc, not from Rusage.Maxrss: os/exec starts the child
	// with CLONE_VM|CLONE_VFORK, and Linux folds the parent's peak (this
	// benchmark's, with its preloaded workloads) into the child's maxrss
	// at execve.
	hwm := peakrss.Watch(cmd.Process.Pid)
	err := cmd.Wait()
	r.wall = time.Since(start)
	r.peakRSSKB = hwm()
	r.cpuSeconds = childCPU(cmd.ProcessState)
	var rep mailferryReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return r, fmt.Errorf("%s: %v; no JSON report (%v); stderr:\n%s", what, err, jerr, tail(stderr.String(), 20))
	}
	if err != nil || rep.ExitCode != 0 {
		var msgs []string
		for _, a := range rep.Accounts {
			if a.Error != "" {
				msgs = append(msgs, a.Error)
			}
		}
		return r, fmt.Errorf("%s: exit %d (%v): %s; stderr:\n%s", what, rep.ExitCode, err,
			strings.Join(msgs, "; "), tail(stderr.String(), 20))
	}
	r.seconds = rep.Totals.Seconds
	r.copied = rep.Totals.Copied
	r.done = rep.Totals.AlreadyDone
	r.bytes = rep.Totals.Bytes
	r.accounts = rep.Totals.Accounts
	return r, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
