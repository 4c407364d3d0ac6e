package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/traffic"
)

// trafficFlags are the traffic control flags (docs/traffic-control.md):
// every account's limits, on copy and run, and the whole run's, on run.
type trafficFlags struct {
	bwlimitRead, bwlimitWrite, maxMessages                  string
	maxBytesPerDay, maxBytesPerDayRead, maxBytesPerDayWrite string
	maxConnectionsPerUser                                   int
	timezone                                                string
	run                                                     bool
	bwlimitReadTotal, bwlimitWriteTotal, maxMessagesTotal   string
	maxConnectionsTotal                                     int
}

const rateHelp = ` (e.g. 2M, "Mon-Fri 08:00,2M 18:00,off"; off: none)`

func (f *trafficFlags) register(fs *pflag.FlagSet, run bool) {
	f.run = run
	each := "each account: "
	if !run {
		each = ""
	}
	fs.StringVar(&f.bwlimitRead, "bwlimit-read", "", each+"bytes per second read from the source, or a timetable"+rateHelp)
	fs.StringVar(&f.bwlimitWrite, "bwlimit-write", "", each+"bytes per second written to the destination, or a timetable"+rateHelp)
	fs.StringVar(&f.maxMessages, "max-messages-per-second", "", each+"messages per second fetched (e.g. 10, 0.5), or a timetable")
	fs.StringVar(&f.maxBytesPerDay, "max-bytes-per-day", "", each+"daily quota of bytes read and of bytes written (e.g. 500MB; off: none, not even a provider's)")
	fs.StringVar(&f.maxBytesPerDayRead, "max-bytes-per-day-read", "", each+"daily quota of bytes read from the source (Gmail: 2500MB unless set)")
	fs.StringVar(&f.maxBytesPerDayWrite, "max-bytes-per-day-write", "", each+"daily quota of bytes written to the destination (Gmail: 500MB unless set)")
	fs.IntVar(&f.maxConnectionsPerUser, "max-connections-per-user", 0, "connections of one user to one server at a time (0: the config's, else the provider's: Gmail 15, Microsoft 365 20)")
	fs.StringVar(&f.timezone, "timezone", "", "time zone of timetables and daily quotas (e.g. Europe/Berlin; default: the config's, else local time)")
	if !run {
		return
	}
	fs.StringVar(&f.bwlimitReadTotal, "bwlimit-read-total", "", "the whole run: bytes per second read from the sources, or a timetable")
	fs.StringVar(&f.bwlimitWriteTotal, "bwlimit-write-total", "", "the whole run: bytes per second written to the destinations, or a timetable")
	fs.StringVar(&f.maxMessagesTotal, "max-messages-per-second-total", "", "the whole run: messages per second fetched, or a timetable")
	fs.IntVar(&f.maxConnectionsTotal, "max-connections-total", 0, "the whole run: connections open at a time (0: the config's max_connections_total, else none)")
}

// checkRateFlag refuses a malformed rate or timetable, naming the
// character.
func checkRateFlag(flag, text string, u traffic.Unit) (config.RateText, error) {
	if text == "" {
		return "", nil
	}
	if _, err := traffic.Parse(text, u); err != nil {
		return "", usagef("--%s %q: %v", flag, text, err)
	}
	return config.RateText(text), nil
}

// quotaFlag reads a daily quota flag; "" is not given.
func quotaFlag(flag, text string) (config.DailyBytes, error) {
	if text == "" {
		return 0, nil
	}
	var d config.DailyBytes
	if err := d.UnmarshalText([]byte(text)); err != nil {
		return 0, usagef("--%s: %v", flag, err)
	}
	return d, nil
}

// limits are the per-account limits the flags give (empty fields: not
// given), checked.
func (f *trafficFlags) limits() (config.Limits, error) {
	var l config.Limits
	var err error
	if l.BWLimitRead, err = checkRateFlag("bwlimit-read", f.bwlimitRead, traffic.Bytes); err != nil {
		return l, err
	}
	if l.BWLimitWrite, err = checkRateFlag("bwlimit-write", f.bwlimitWrite, traffic.Bytes); err != nil {
		return l, err
	}
	if l.MaxMessagesPerSecond, err = checkRateFlag("max-messages-per-second", f.maxMessages, traffic.Messages); err != nil {
		return l, err
	}
	both, err := quotaFlag("max-bytes-per-day", f.maxBytesPerDay)
	if err != nil {
		return l, err
	}
	l.MaxBytesPerDayRead, l.MaxBytesPerDayWrite = both, both
	if d, err := quotaFlag("max-bytes-per-day-read", f.maxBytesPerDayRead); err != nil {
		return l, err
	} else if d != 0 {
		l.MaxBytesPerDayRead = d
	}
	if d, err := quotaFlag("max-bytes-per-day-write", f.maxBytesPerDayWrite); err != nil {
		return l, err
	} else if d != 0 {
		l.MaxBytesPerDayWrite = d
	}
	if f.maxConnectionsPerUser < 0 || f.maxConnectionsTotal < 0 {
		return l, usagef("--max-connections-per-user and --max-connections-total must not be negative")
	}
	return l, nil
}

// check refuses malformed traffic flags before anything else happens
// (a password prompt, a connection).
func (f *trafficFlags) check() error {
	if _, err := f.limits(); err != nil {
		return err
	}
	if _, err := config.LoadLocation(f.timezone); err != nil {
		return usagef("--timezone: %v", err)
	}
	for _, t := range []struct{ flag, text string }{
		{"bwlimit-read-total", f.bwlimitReadTotal}, {"bwlimit-write-total", f.bwlimitWriteTotal},
	} {
		if _, err := checkRateFlag(t.flag, t.text, traffic.Bytes); err != nil {
			return err
		}
	}
	_, err := checkRateFlag("max-messages-per-second-total", f.maxMessagesTotal, traffic.Messages)
	return err
}

// apply sets the traffic control of the command's accounts: the flags'
// limits over cfg's (nil for copy), the run's limits, the zone and the
// clock (the tests' own, handed in through env; the wall clock otherwise).
func (f *trafficFlags) apply(o *account.Options, cfg *config.Config, e *env, log *slog.Logger) error {
	l, err := f.limits()
	if err != nil {
		return err
	}
	o.Limits, o.MaxConnectionsPerUser, o.MaxConnectionsTotal = l, f.maxConnectionsPerUser, f.maxConnectionsTotal
	o.Crawl = e.crawl
	zone := f.timezone
	var total config.TotalLimits
	if cfg != nil {
		total = cfg.Total
		if zone == "" {
			zone = cfg.Timezone
		}
	}
	loc, err := config.LoadLocation(zone)
	if err != nil {
		return usagef("--timezone: %v", err)
	}
	for _, t := range []struct {
		flag string
		text string
		dst  *config.RateText
		u    traffic.Unit
	}{
		{"bwlimit-read-total", f.bwlimitReadTotal, &total.BWLimitRead, traffic.Bytes},
		{"bwlimit-write-total", f.bwlimitWriteTotal, &total.BWLimitWrite, traffic.Bytes},
		{"max-messages-per-second-total", f.maxMessagesTotal, &total.MaxMessagesPerSecond, traffic.Messages},
	} {
		v, err := checkRateFlag(t.flag, t.text, t.u)
		if err != nil {
			return err
		}
		if v != "" {
			*t.dst = v
		}
	}
	var tl traffic.Limits
	if tl.Read, err = total.BWLimitRead.Timetable(traffic.Bytes); err != nil {
		return err
	}
	if tl.Write, err = total.BWLimitWrite.Timetable(traffic.Bytes); err != nil {
		return err
	}
	if tl.Messages, err = total.MaxMessagesPerSecond.Timetable(traffic.Messages); err != nil {
		return err
	}
	o.Traffic = traffic.NewRun(traffic.Options{Clock: e.clock, Location: loc, Total: tl, Logger: log})
	return nil
}

// pausedAccount is what the engine's Traffic of an account built here
// also is: it can be told that an earlier run left the account paused,
// and where earlier runs recorded what it moved.
type pausedAccount interface {
	Exhausted(until time.Time, reason string)
	RecordedUsage(read func(ctx context.Context, window time.Time) (traffic.Usage, error))
}

// carryPauses makes each account's daily quota hold across runs: its
// traffic control reads what earlier runs moved in the quota's day from
// the ledger (the engine adds to it with every commit), and an account an
// earlier run left paused for a quota until a time still to come (the
// last run recorded as paused) stays paused, also when this run's limits
// would let it move a little more.
func carryPauses(ctx context.Context, ledger runsReader, jobs []pipeline.Job, now time.Time) error {
	for _, j := range jobs {
		p, ok := j.Options.Traffic.(pausedAccount)
		if !ok {
			continue
		}
		id := j.Options.Account
		p.RecordedUsage(func(ctx context.Context, window time.Time) (traffic.Usage, error) {
			u, err := ledger.Usage(ctx, id, window)
			return traffic.Usage{Window: window, ReadBytes: u.ReadBytes, WrittenBytes: u.WrittenBytes}, err
		})
		runs, err := ledger.Runs(ctx, id, 1)
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			continue
		}
		if pe := runs[0].PausedAt(now); pe != nil {
			p.Exhausted(pe.Until, pe.Reason)
		}
	}
	return nil
}

// runsReader reads an account's last runs and its quota usage
// (checkpoint.Ledger).
type runsReader interface {
	Runs(ctx context.Context, account pipeline.AccountID, n int) ([]pipeline.RunRecord, error)
	Usage(ctx context.Context, account pipeline.AccountID, window time.Time) (pipeline.Usage, error)
}
