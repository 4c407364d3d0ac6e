package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mailferry/mailferry/pipeline"
)

// progressView shows progress on stderr: one total bar when stderr is a
// terminal, plain periodic log lines otherwise (a bar's \r frames would turn
// a cron log into one long line). It implements pipeline.Progress and is
// safe for concurrent use.
type progressView struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar // nil: log lines
	log      *slog.Logger
	total    int
	done     int
	bytes    int64
	active   map[string]*accountProgress
	started  time.Time
	stopTick func()
	rows     int // account lines under the bar
	// names maps the ledger keys the engine's events carry
	// (pipeline.Options.Name) to the names people know the accounts by
	// (pipeline.Options.Label).
	names map[string]string
}

// setNames makes the lines and rows show the jobs' names.
func (p *progressView) setNames(jobs []pipeline.Job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names = map[string]string{}
	for _, j := range jobs {
		if j.Options.Label != "" {
			p.names[j.Options.Name] = j.Options.Label
		}
	}
}

// display is the name of the account whose key the engine gave.
func (p *progressView) display(key string) string {
	if n, ok := p.names[key]; ok {
		return n
	}
	return key
}

type accountProgress struct {
	toCopy int
	done   int
	bytes  int64
}

// newProgressView starts the display; mode is "bar", "lines" or "none".
// With rows > 0 the bar has that many lines under it, one per account in
// progress (runs with several workers).
func newProgressView(mode string, w io.Writer, log *slog.Logger, every time.Duration, rows int) *progressView {
	p := &progressView{log: log, active: map[string]*accountProgress{}, started: time.Now(), rows: rows}
	switch mode {
	case "bar":
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("messages"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
			// No spinner goroutine of the library's own: it reads the
			// bar's start time without the bar's lock, a data race with
			// the first render (progressbar v3.19.1). The spinner turns
			// on each render instead (Add, and tickRows' redraws).
			progressbar.OptionSetSpinnerChangeInterval(0),
		}
		if rows > 0 {
			opts = append(opts, progressbar.OptionSetMaxDetailRow(rows))
		}
		p.bar = progressbar.NewOptions(-1, opts...)
		if rows > 0 {
			ctx, cancel := context.WithCancel(context.Background())
			p.stopTick = cancel
			go p.tickRows(ctx, every/10)
		}
	case "lines":
		ctx, cancel := context.WithCancel(context.Background())
		p.stopTick = cancel
		go p.tick(ctx, every)
	}
	return p
}

func (p *progressView) tick(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.logLine()
		}
	}
}

// tickRows redraws the account lines under the bar: exactly rows lines
// each time (blank ones fill up), so that the bar's rolling detail area
// shows the accounts now in progress and nothing stale.
func (p *progressView) tickRows(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		names := make([]string, 0, len(p.active))
		for n := range p.active {
			names = append(names, n)
		}
		sort.Strings(names)
		lines := make([]string, 0, p.rows)
		for _, n := range names {
			if len(lines) == p.rows {
				break
			}
			a := p.active[n]
			lines = append(lines, fmt.Sprintf("  %s  %d/%d messages, %.1f MB", p.display(n), a.done, a.toCopy, float64(a.bytes)/1e6))
		}
		for len(lines) < p.rows {
			lines = append(lines, "")
		}
		bar := p.bar
		p.mu.Unlock()
		for _, l := range lines {
			if bar.AddDetail(l) != nil {
				return // finished
			}
		}
	}
}

func (p *progressView) logLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.active) == 0 && p.total == 0 {
		// Nothing listed yet (still connecting): "copied=0 of=0" every
		// ten seconds would say nothing.
		return
	}
	secs := time.Since(p.started).Seconds()
	for name, a := range p.active {
		p.log.Info("progress", "account", p.display(name), "copied", a.done, "of", a.toCopy,
			"mb", fmt.Sprintf("%.1f", float64(a.bytes)/1e6))
	}
	if secs > 0 {
		p.log.Info("progress total", "copied", p.done, "of", p.total,
			"msg_per_s", fmt.Sprintf("%.1f", float64(p.done)/secs),
			"mb_per_s", fmt.Sprintf("%.2f", float64(p.bytes)/1e6/secs))
	}
}

func (p *progressView) AccountStarted(account string, toCopy int, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.active[account]
	if prev != nil {
		// A retry lists again: replace what the last attempt announced.
		p.total -= prev.toCopy - prev.done
	}
	p.active[account] = &accountProgress{toCopy: toCopy}
	p.total += toCopy
	if prev != nil {
		p.active[account].toCopy += prev.done
		p.active[account].done = prev.done
		p.active[account].bytes = prev.bytes
	}
	if p.bar != nil && p.total > 0 {
		p.bar.ChangeMax(p.total)
	}
}

func (p *progressView) MessageDone(account string, _ pipeline.Outcome, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.active[account]; a != nil {
		a.done++
		a.bytes += bytes
	}
	p.done++
	p.bytes += bytes
	if p.bar != nil {
		_ = p.bar.Add(1)
	}
}

// AccountPaused: the log says it (the runner's "account paused" line, which
// the bar carries); the account keeps its row and counts until it goes on.
func (p *progressView) AccountPaused(string, *pipeline.PausedError) {}

func (p *progressView) AccountFinished(account string, _ *pipeline.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.active, account)
}

// close stops the display.
func (p *progressView) close() {
	if p.stopTick != nil {
		p.stopTick()
	}
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Exit()
	}
}

// logWriter is where logs go: stderr, or while a progress bar is drawn,
// through the bar, which prints the lines above itself instead of tearing
// through it.
type logWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar == nil {
		return l.w.Write(p)
	}
	if _, err := progressbar.Bprintf(l.bar, "%s", p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *logWriter) setBar(b *progressbar.ProgressBar) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bar = b
}
