package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"text/tabwriter"
	"time"
)

// row is one line of the results table.
type row struct {
	Workload   string  `json:"workload"`
	Path       string  `json:"path"`
	Kind       string  `json:"kind"` // "read ceiling", "write ceiling", "mailferry", …
	Messages   int     `json:"messages"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// PeakRSSMB is the child's maximum resident set (mailferry rows only).
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	// ReportSeconds is the time mailferry's own JSON report gives.
	ReportSeconds float64 `json:"report_seconds,omitempty"`
	// Ratio is MBPerSec (or msgs/s for latency) over what RatioTo names.
	Ratio           float64 `json:"ratio,omitempty"`
	RatioTo         string  `json:"ratio_to,omitempty"`
	CeilingMBPerSec float64 `json:"ceiling_mb_per_sec,omitempty"`
	// SerialCeilingMBPerSec is 1/(1/R + 1/W) of the read and write
	// ceilings R and W: the speed if reading and writing could not overlap
	// at all. An extra figure; the target is a ratio to min(R, W).
	SerialCeilingMBPerSec float64 `json:"serial_ceiling_mb_per_sec,omitempty"`
	// Rerun rows are a second run with nothing new: Messages is how many
	// it found already done, and only the time matters.
	Rerun bool `json:"rerun,omitempty"`
	// Trial numbers the repetitions of -trials, from 1.
	Trial int `json:"trial,omitempty"`
	// Binary is the -baseline-bin binary that made a mailferry row; empty
	// for ./cmd/mailferry.
	Binary string `json:"binary,omitempty"`
	// CPU is the CPU time each party spent during the pass.
	CPU *cpuUse `json:"cpu,omitempty"`
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

func (t transfer) mbps() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return mb(t.bytes) / t.elapsed.Seconds()
}

// with fills the size and speed columns from t.
func (r row) with(t transfer) row {
	r.Messages, r.Bytes, r.Seconds = t.messages, t.bytes, t.elapsed.Seconds()
	if t.cpu.Wall > 0 {
		u := t.cpu
		r.CPU = &u
	}
	if r.Seconds > 0 {
		r.MsgsPerSec = float64(t.messages) / r.Seconds
		r.MBPerSec = mb(t.bytes) / r.Seconds
	}
	return r
}

// row turns a mailferry run into a table row, timed by the wall clock
// around the whole child process.
func (m mailferryRun) row(workload, path, kind string) row {
	r := row{Workload: workload, Path: path, Kind: kind}.with(transfer{messages: m.copied, bytes: m.bytes, elapsed: m.wall})
	if m.copied == 0 && m.done > 0 {
		r = row{Workload: workload, Path: path, Kind: kind, Messages: m.done, Seconds: m.wall.Seconds(), Rerun: true}
	}
	r.PeakRSSMB = float64(m.peakRSSKB) / 1024
	r.ReportSeconds = m.seconds
	if m.cpu.Wall > 0 {
		u := m.cpu
		r.CPU = &u
	}
	return r
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tPATH\tMESSAGES\tMB\tSECONDS\tMSGS/S\tMB/S\tPEAK RSS MB\tRATIO")
	prev := ""
	multi := hasTrials(rows)
	for _, r := range rows {
		if prev != "" && r.Workload != prev {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t")
		}
		prev = r.Workload
		r.Path = r.label(multi)
		rss, ratio := "", ""
		if r.PeakRSSMB > 0 {
			rss = fmt.Sprintf("%.1f", r.PeakRSSMB)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f × %s", r.Ratio, r.RatioTo)
		}
		if r.SerialCeilingMBPerSec > 0 {
			ratio += fmt.Sprintf("; %.2f × serial 1/(1/R+1/W) (extra)", r.MBPerSec/r.SerialCeilingMBPerSec)
		}
		if r.Rerun {
			fmt.Fprintf(tw, "%s\t%s\t%d done\t-\t%.2f\t-\t-\t%s\t%s\n", r.Workload, r.Path, r.Messages,
				r.Seconds, rss, ratio)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%s\t%s\n", r.Workload, r.Path, r.Messages,
			mb(r.Bytes), r.Seconds, r.MsgsPerSec, r.MBPerSec, rss, ratio)
	}
	tw.Flush()
}

// jsonResults is the -json file.
type jsonResults struct {
	Finished  time.Time `json:"finished"`
	Go        string    `json:"go"`
	CPUs      int       `json:"cpus"`
	Seed      uint64    `json:"seed"`
	DelayMS   float64   `json:"delay_ms_each_way"`
	Seconds   float64   `json:"seconds"`
	Mailferry []string  `json:"mailferry_flags,omitempty"`
	Rows      []row     `json:"rows"`
	Summaries []summary `json:"summaries,omitempty"`
}

func writeJSON(path string, cfg config, rows []row, sums []summary, took time.Duration) error {
	data, err := json.MarshalIndent(jsonResults{
		Finished: time.Now().UTC(), Go: runtime.Version(), CPUs: runtime.NumCPU(), Seed: cfg.seed,
		DelayMS: float64(cfg.delay) / float64(time.Millisecond), Seconds: took.Seconds(),
		Mailferry: cfg.extra, Rows: rows, Summaries: sums,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}
