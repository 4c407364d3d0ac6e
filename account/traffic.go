package account

import (
	"fmt"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/connlimit"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/traffic"
)

// runCapKey is the connlimit key of the whole run's cap
// (max_connections_total).
const runCapKey = "run"

// userCapKey is the connlimit key of one user's connections to one server
// (max_connections_per_user): servers count the mailbox's user, also when
// a master user logs in for it.
func userCapKey(ep config.Endpoint) string { return "user:" + ep.Addr() + "/" + ep.User }

// userCap is the cap of a user on a server: the configured one, else the
// limit of the server's provider p (nil: none), else none that a refusing
// server cannot lower.
func userCap(configured int, ep config.Endpoint, p *provider.Provider) connlimit.Cap {
	n := configured
	if n <= 0 && p != nil {
		n = p.MaxConnectionsPerUser
	}
	if n <= 0 {
		n = connlimit.Unlimited
	}
	return connlimit.Cap{Key: userCapKey(ep), Max: n}
}

// CapLoweredError is a session a server refused because the user (or the
// client's address) has too many connections open: the user's cap on that
// server is lowered to Cap for the rest of the run, and the attempt is
// tried again (ClassTransient) instead of failing the account.
type CapLoweredError struct {
	Err    error
	Server string
	User   string
	Cap    int
}

func (e *CapLoweredError) Error() string {
	return fmt.Sprintf("%v (the server has too many connections of %s: at most %d at a time from now on)", e.Err, e.User, e.Cap)
}

func (e *CapLoweredError) Unwrap() error { return e.Err }

// ErrorClass implements pipeline.Classifier: transient, whatever the
// refusal's own class (a login NO is fatal otherwise).
func (e *CapLoweredError) ErrorClass() pipeline.Class { return pipeline.ClassTransient }

// refused lowers the user's cap on d's server when err says the server
// refused a session of n connections because too many are open, to the
// connections of this run the server was holding besides it (at least 1),
// and returns err as a *CapLoweredError. Other errors pass unchanged.
func (s *Set) refused(d *side, n int, err error) error {
	if err == nil || d.userKey == "" || !connlimit.Refused(err) {
		return err
	}
	used, _ := s.limits.InUse(d.userKey)
	newCap := max(1, used-n)
	if s.limits.Lower(d.userKey, newCap) {
		d.log.Warn("the server refused a connection because the user has too many: lowering the per-user cap for the rest of the run",
			"server", d.ep.Addr(), "user", d.ep.User, "max_connections_per_user", newCap, "error", err)
	} else {
		_, newCap = s.limits.InUse(d.userKey)
	}
	return &CapLoweredError{Err: err, Server: d.ep.Addr(), User: d.ep.User, Cap: newCap}
}

// quotaOf is a daily quota: the configured one, else the provider's; "off"
// (config.NoQuota) is none.
func quotaOf(configured config.DailyBytes, preset int64) int64 {
	switch {
	case configured == config.NoQuota:
		return 0
	case configured > 0:
		return int64(configured)
	}
	return preset
}

// trafficOf builds the account's traffic control from its limits (the
// command line's over the config's) and the limits of the servers'
// providers (nil: none).
func (s *Set) trafficOf(key string, l config.Limits, src, dst *provider.Provider) (*traffic.Account, error) {
	o := s.opts.Limits
	if o.BWLimitRead != "" {
		l.BWLimitRead = o.BWLimitRead
	}
	if o.BWLimitWrite != "" {
		l.BWLimitWrite = o.BWLimitWrite
	}
	if o.MaxMessagesPerSecond != "" {
		l.MaxMessagesPerSecond = o.MaxMessagesPerSecond
	}
	if o.MaxBytesPerDayRead != 0 {
		l.MaxBytesPerDayRead = o.MaxBytesPerDayRead
	}
	if o.MaxBytesPerDayWrite != 0 {
		l.MaxBytesPerDayWrite = o.MaxBytesPerDayWrite
	}
	var tl traffic.Limits
	var err error
	if tl.Read, err = l.BWLimitRead.Timetable(traffic.Bytes); err != nil {
		return nil, fmt.Errorf("bwlimit_read: %w", err)
	}
	if tl.Write, err = l.BWLimitWrite.Timetable(traffic.Bytes); err != nil {
		return nil, fmt.Errorf("bwlimit_write: %w", err)
	}
	if tl.Messages, err = l.MaxMessagesPerSecond.Timetable(traffic.Messages); err != nil {
		return nil, fmt.Errorf("max_messages_per_second: %w", err)
	}
	var read, written int64
	if src != nil {
		read = src.ReadBytesPerDay
	}
	if dst != nil {
		written = dst.WrittenBytesPerDay
	}
	q := traffic.Quota{
		ReadBytes:    quotaOf(l.MaxBytesPerDayRead, read),
		WrittenBytes: quotaOf(l.MaxBytesPerDayWrite, written),
	}
	return s.traffic.Account(key, tl, q), nil
}
