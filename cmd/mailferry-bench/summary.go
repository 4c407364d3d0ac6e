package main

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// summary is what the trials of one workload and path come to: medians,
// and where the CPU time went.
type summary struct {
	Workload string   `json:"workload"`
	Path     string   `json:"path"`
	Trials   int      `json:"trials"`
	Text     string   `json:"text"`
	Notes    []string `json:"notes,omitempty"`
	// The medians over the trials (loopback summaries).
	MsgsPerSec         float64 `json:"msgs_per_sec,omitempty"`
	MBPerSec           float64 `json:"mb_per_sec,omitempty"`
	ReadMBPerSec       float64 `json:"read_ceiling_mb_per_sec,omitempty"`
	WriteMBPerSec      float64 `json:"write_ceiling_mb_per_sec,omitempty"`
	Ratio              float64 `json:"ratio,omitempty"`
	SerialRatio        float64 `json:"serial_ratio,omitempty"`
	CPUBoundMsgsPerSec float64 `json:"cpu_bound_msgs_per_sec,omitempty"`
	// Tools are mailferry, the baseline binary and the other tools side
	// by side, medians of the same trials.
	Tools []toolFigures `json:"tools,omitempty"`
}

// toolFigures is one tool's medians over the trials of one workload and
// path: speed, mailferry's speed over it, and the CPU time each party
// spent per MB moved.
type toolFigures struct {
	Tool       string  `json:"tool"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// MailferryRatio is mailferry's MB/s over this tool's, the median of
	// the trials' ratios (each trial runs both).
	MailferryRatio float64   `json:"mailferry_ratio"`
	Ratios         []float64 `json:"mailferry_ratios"`
	// CPU milliseconds per MB moved: the tool's process, the source
	// Dovecot, the destination Dovecot.
	ClientMSPerMB float64 `json:"client_cpu_ms_per_mb"`
	SourceMSPerMB float64 `json:"source_cpu_ms_per_mb"`
	DestMSPerMB   float64 `json:"dest_cpu_ms_per_mb"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
}

// perMB is CPU milliseconds per MB of r's pass; 0 without figures.
func perMB(r row, sec func(cpuUse) float64) float64 {
	if r.CPU == nil || r.Bytes == 0 {
		return 0
	}
	return 1000 * sec(*r.CPU) / mb(r.Bytes)
}

// toolOf reduces one tool's rows (one per trial, beside mailferry's) to
// medians.
func toolOf(name string, rows, mailferry []row) toolFigures {
	t := toolFigures{Tool: name}
	var msgs, mbs, client, src, dst, rss []float64
	for i, r := range rows {
		msgs, mbs = append(msgs, r.MsgsPerSec), append(mbs, r.MBPerSec)
		client, src, dst = append(client, perMB(r, cpuClient)), append(src, perMB(r, cpuSource)), append(dst, perMB(r, cpuDest))
		rss = append(rss, r.PeakRSSMB)
		if r.MBPerSec > 0 {
			t.Ratios = append(t.Ratios, mailferry[i].MBPerSec/r.MBPerSec)
		}
	}
	t.MsgsPerSec, t.MBPerSec, t.MailferryRatio = median(msgs), median(mbs), median(t.Ratios)
	t.ClientMSPerMB, t.SourceMSPerMB, t.DestMSPerMB = median(client), median(src), median(dst)
	t.PeakRSSMB = median(rss)
	return t
}

// tools lists mailferry, the baseline binary and each other tool of
// trials, in the order of peers.
func tools(trials []trial) []toolFigures {
	var mf []row
	for _, t := range trials {
		mf = append(mf, t.mailferry)
	}
	out := []toolFigures{toolOf("mailferry", mf, mf)}
	for i := range trials[0].baselines {
		var base []row
		for _, t := range trials {
			base = append(base, t.baselines[i])
		}
		out = append(out, toolOf("mailferry"+baselineLabel(trials[0].baselines[i].Binary, ""), base, mf))
	}
	for _, p := range peers {
		var rows []row
		for _, t := range trials {
			if r, ok := t.peers[p.name]; ok {
				rows = append(rows, r)
			}
		}
		if len(rows) == len(trials) {
			out = append(out, toolOf(p.name, rows, mf))
		}
	}
	return out
}

// serialCeiling is 1/(1/r + 1/w): how fast reading then writing each
// message would go if the two could not overlap at all.
func serialCeiling(r, w float64) float64 {
	if r <= 0 || w <= 0 {
		return 0
	}
	return 1 / (1/r + 1/w)
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// list formats ratios for the summary: "0.52 0.56 0.61".
func list(xs []float64) string {
	f := make([]string, len(xs))
	for i, x := range xs {
		f[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(f, " ")
}

// perMsg is CPU milliseconds per message of r's pass; 0 without figures.
func perMsg(r row, sec func(cpuUse) float64) float64 {
	if r.CPU == nil || r.Messages == 0 {
		return 0
	}
	return 1000 * sec(*r.CPU) / float64(r.Messages)
}

func cpuClient(u cpuUse) float64 { return u.Client }
func cpuSource(u cpuUse) float64 { return u.Source }
func cpuDest(u cpuUse) float64   { return u.Dest }

// summarize reduces the trials of one loopback measurement to medians, and
// checks the CPU budget: with the source Dovecot, the destination Dovecot
// and mailferry sharing the machine's cores, the copy cannot go faster
// than cores / (the CPU time the three need per message), whatever
// mailferry does about waiting.
func summarize(workload, path string, trials []trial) summary {
	var msgs, mbs, reads, writes, ratios, serial []float64
	var mfCPU, srcCPU, dstCPU, readSrc, writeDst, readClient, writeClient, busy, machine []float64
	var ceilingMsgs []float64
	for _, t := range trials {
		m := t.mailferry
		msgs, mbs = append(msgs, m.MsgsPerSec), append(mbs, m.MBPerSec)
		reads, writes = append(reads, t.read.MBPerSec), append(writes, t.write.MBPerSec)
		ratios = append(ratios, m.Ratio)
		if m.SerialCeilingMBPerSec > 0 {
			serial = append(serial, m.MBPerSec/m.SerialCeilingMBPerSec)
		}
		ceilingMsgs = append(ceilingMsgs, min(t.read.MsgsPerSec, t.write.MsgsPerSec))
		if m.CPU == nil || m.CPU.Wall <= 0 {
			continue
		}
		mfCPU = append(mfCPU, perMsg(m, cpuClient))
		srcCPU = append(srcCPU, perMsg(m, cpuSource))
		dstCPU = append(dstCPU, perMsg(m, cpuDest))
		readSrc = append(readSrc, perMsg(t.read, cpuSource))
		readClient = append(readClient, perMsg(t.read, cpuClient))
		writeDst = append(writeDst, perMsg(t.write, cpuDest))
		writeClient = append(writeClient, perMsg(t.write, cpuClient))
		busy = append(busy, m.CPU.ours()/m.CPU.Wall)
		machine = append(machine, m.CPU.Machine/m.CPU.Wall)
	}
	s := summary{
		Workload: workload, Path: path, Trials: len(trials),
		MsgsPerSec: median(msgs), MBPerSec: median(mbs), ReadMBPerSec: median(reads), WriteMBPerSec: median(writes),
		Ratio: median(ratios), SerialRatio: median(serial),
	}
	s.Text = fmt.Sprintf("mailferry %.0f msgs/s, %.1f MB/s = %.2f × min(R, W) (trials %s); R (read ceiling) %.1f MB/s, W (write ceiling) %.1f MB/s",
		s.MsgsPerSec, s.MBPerSec, s.Ratio, list(ratios), s.ReadMBPerSec, s.WriteMBPerSec)
	if len(serial) > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("extra figure, not the target: serial ceiling 1/(1/R + 1/W) = %.1f MB/s; mailferry = %.2f × that (trials %s)",
			serialCeiling(s.ReadMBPerSec, s.WriteMBPerSec), s.SerialRatio, list(serial)))
	}
	for i := range trials[0].baselines {
		var bMsgs, bRatios, bCPU, bSrc, bDst []float64
		for _, t := range trials {
			b := t.baselines[i]
			bMsgs, bRatios = append(bMsgs, b.MsgsPerSec), append(bRatios, b.Ratio)
			bCPU, bSrc, bDst = append(bCPU, perMsg(b, cpuClient)), append(bSrc, perMsg(b, cpuSource)), append(bDst, perMsg(b, cpuDest))
		}
		s.Notes = append(s.Notes, fmt.Sprintf("baseline %s, same trials: %.0f msgs/s = %.2f × min(R, W) (trials %s); CPU ms per message: mailferry %.3f, source Dovecot %.3f, destination Dovecot %.3f",
			filepath.Base(trials[0].baselines[i].Binary), median(bMsgs), median(bRatios), list(bRatios), median(bCPU), median(bSrc), median(bDst)))
	}
	s.Tools = tools(trials)
	if len(mfCPU) == 0 {
		return s
	}
	cores := float64(runtime.NumCPU())
	mf, src, dst := median(mfCPU), median(srcCPU), median(dstCPU)
	s.Notes = append(s.Notes,
		fmt.Sprintf("CPU ms per message during mailferry's run: mailferry %.3f, source Dovecot %.3f, destination Dovecot %.3f (sum %.3f); busy %.2f of %.0f cores (the three), %.2f (the whole machine)",
			mf, src, dst, mf+src+dst, median(busy), cores, median(machine)),
		fmt.Sprintf("CPU ms per message in the ceilings: source Dovecot %.3f (best read, client %.3f), destination Dovecot %.3f (best write, client %.3f)",
			median(readSrc), median(readClient), median(writeDst), median(writeClient)))
	if sum := mf + src + dst; sum > 0 {
		s.CPUBoundMsgsPerSec = cores * 1000 / sum
		s.Notes = append(s.Notes, fmt.Sprintf("CPU bound: %.0f cores / (mailferry + source + destination CPU per message) = %.0f msgs/s = %.2f × min(R, W); mailferry reached %.2f of that bound",
			cores, s.CPUBoundMsgsPerSec, s.CPUBoundMsgsPerSec/median(ceilingMsgs), s.MsgsPerSec/s.CPUBoundMsgsPerSec))
	}
	return s
}

func printSummaries(w io.Writer, sums []summary) {
	for _, s := range sums {
		fmt.Fprintf(w, "%s, %s, median of %d trial(s): %s\n", s.Workload, s.Path, s.Trials, s.Text)
		for _, n := range s.Notes {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
}

// printCPUTable prints where the CPU time of each measured pass went:
// seconds per party, how many cores were busy, and milliseconds per
// message.
func printCPUTable(w io.Writer, rows []row, cores int) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "CPU\tWORKLOAD\tPATH\tWALL S\tCLIENT S\tSOURCE S\tDEST S\tOTHER S\tBUSY OF %d CORES: 3 PARTIES / MACHINE\tMS/MSG: CLIENT\tSOURCE\tDEST\n", cores)
	multi := hasTrials(rows)
	for _, r := range rows {
		if r.CPU == nil || r.CPU.Wall <= 0 {
			continue
		}
		u := *r.CPU
		path := r.label(multi)
		perMsgs := "\t\t"
		if !r.Rerun && r.Messages > 0 {
			perMsgs = fmt.Sprintf("%.3f\t%.3f\t%.3f", perMsg(r, cpuClient), perMsg(r, cpuSource), perMsg(r, cpuDest))
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f / %.2f\t%s\n", r.Workload, path, u.Wall,
			u.Client, u.Source, u.Dest, u.other(), u.ours()/u.Wall, u.Machine/u.Wall, perMsgs)
	}
	tw.Flush()
}

// label is r's path, with its trial number when there are several.
func (r row) label(multi bool) string {
	if multi && r.Trial > 0 {
		return fmt.Sprintf("#%d %s", r.Trial, r.Path)
	}
	return r.Path
}

// hasTrials reports whether rows come from more than one trial.
func hasTrials(rows []row) bool {
	for _, r := range rows {
		if r.Trial > 1 {
			return true
		}
	}
	return false
}

// printPeerTable prints mailferry beside the other tools, per workload and
// path: the medians of the trials, mailferry's speed over each tool's, and
// the CPU time each party spent per MB moved.
func printPeerTable(w io.Writer, sums []summary) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "AGAINST OTHER TOOLS\tWORKLOAD\tPATH\tTRIALS\tMSGS/S\tMB/S\tMAILFERRY ÷ TOOL (TRIALS)\tCPU MS/MB: TOOL\tSOURCE\tDEST\tALL\tPEAK RSS MB")
	for _, s := range sums {
		if len(s.Tools) < 2 {
			continue
		}
		for _, t := range s.Tools {
			ratio := "-"
			if t.Tool != "mailferry" {
				ratio = fmt.Sprintf("%.2f (%s)", t.MailferryRatio, list(t.Ratios))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.1f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\n", t.Tool, s.Workload, s.Path, s.Trials,
				t.MsgsPerSec, t.MBPerSec, ratio, t.ClientMSPerMB, t.SourceMSPerMB, t.DestMSPerMB,
				t.ClientMSPerMB+t.SourceMSPerMB+t.DestMSPerMB, t.PeakRSSMB)
		}
	}
	tw.Flush()
}
