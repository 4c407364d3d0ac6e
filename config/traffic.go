package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/traffic"
)

// RateText is a rate or a weekly timetable of rates as written: a TOML
// string ("2M", "Mon-Fri 08:00,2M 18:00,off"), or for messages per second
// a number (10, 0.5). "" means not set.
type RateText string

// UnmarshalTOML takes a string, an integer or a float.
func (r *RateText) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*r = RateText(v)
	case int64:
		*r = RateText(strconv.FormatInt(v, 10))
	case float64:
		*r = RateText(strconv.FormatFloat(v, 'g', -1, 64))
	default:
		return fmt.Errorf("want a rate such as \"2M\" or a timetable, got %T", v)
	}
	return nil
}

// DailyBytes is a daily quota in bytes: a size as ByteSize reads it, or
// "off" for none even where a provider's preset would set one. 0 means not
// set (the preset applies).
type DailyBytes int64

// NoQuota is the DailyBytes of "off".
const NoQuota DailyBytes = -1

// UnmarshalTOML takes an integer or a size string.
func (d *DailyBytes) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return errors.New("must not be negative")
		}
		*d = DailyBytes(v)
	case string:
		return d.UnmarshalText([]byte(v))
	default:
		return fmt.Errorf("want a size such as \"500MB\" or \"off\", got %T", v)
	}
	return nil
}

// UnmarshalText reads a size or "off".
func (d *DailyBytes) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.EqualFold(s, "off") {
		*d = NoQuota
		return nil
	}
	n, err := ParseByteSize(s)
	if err != nil {
		return fmt.Errorf("%w, or \"off\"", err)
	}
	*d = DailyBytes(n)
	return nil
}

// Limits are an account's traffic limits (package traffic): per-second
// rates or timetables of them ("" = none), and daily quotas (0 = not set,
// NoQuota = none).
type Limits struct {
	BWLimitRead          RateText
	BWLimitWrite         RateText
	MaxMessagesPerSecond RateText
	MaxBytesPerDayRead   DailyBytes
	MaxBytesPerDayWrite  DailyBytes
}

// fileLimits are the traffic keys of the top level (every account's) and
// of an [[account]] (its own).
type fileLimits struct {
	BWLimitRead          *RateText   `toml:"bwlimit_read"`
	BWLimitWrite         *RateText   `toml:"bwlimit_write"`
	MaxMessagesPerSecond *RateText   `toml:"max_messages_per_second"`
	MaxBytesPerDay       *DailyBytes `toml:"max_bytes_per_day"`
	MaxBytesPerDayRead   *DailyBytes `toml:"max_bytes_per_day_read"`
	MaxBytesPerDayWrite  *DailyBytes `toml:"max_bytes_per_day_write"`
}

// apply sets the keys f has onto l; max_bytes_per_day sets both quotas,
// and the _read and _write keys win over it.
func (f *fileLimits) apply(l *Limits) {
	set(&l.BWLimitRead, f.BWLimitRead)
	set(&l.BWLimitWrite, f.BWLimitWrite)
	set(&l.MaxMessagesPerSecond, f.MaxMessagesPerSecond)
	set(&l.MaxBytesPerDayRead, f.MaxBytesPerDay)
	set(&l.MaxBytesPerDayWrite, f.MaxBytesPerDay)
	set(&l.MaxBytesPerDayRead, f.MaxBytesPerDayRead)
	set(&l.MaxBytesPerDayWrite, f.MaxBytesPerDayWrite)
}

func (f *fileLimits) isZero() bool { return *f == fileLimits{} }

// TotalLimits are the whole run's rate limits, shared by its accounts.
type TotalLimits struct {
	BWLimitRead          RateText
	BWLimitWrite         RateText
	MaxMessagesPerSecond RateText
}

// LimitsOf returns account a's traffic limits: the top-level keys with a's
// own over them.
func (c *Config) LimitsOf(a *Account) Limits {
	l := c.Limits
	if a.limits != nil {
		a.limits.apply(&l)
	}
	return l
}

// Timetable parses a rate or timetable of u; "" is no limit.
func (r RateText) Timetable(u traffic.Unit) (traffic.Timetable, error) {
	if r == "" {
		return traffic.Timetable{}, nil
	}
	return traffic.Parse(string(r), u)
}

// Location returns the zone of the timetables and the quota days: the
// timezone key, time.Local when it is empty or "Local".
func (c *Config) Location() (*time.Location, error) { return LoadLocation(c.Timezone) }

// LoadLocation loads a named zone ("Europe/Berlin", "UTC"); "" and "Local"
// are the machine's local time.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: want a name such as \"Europe/Berlin\" or \"UTC\", or \"Local\"", name)
	}
	return loc, nil
}

// checkRate adds an error at the character of text that does not parse
// as a rate or timetable of u. p is the key's position: its ValCol points
// at the value, which for a string starts with a quote.
func checkRate(errs *errList, p position, key string, text RateText, u traffic.Unit) {
	if text == "" {
		return
	}
	if _, err := traffic.Parse(string(text), u); err != nil {
		var se *traffic.SyntaxError
		if errors.As(err, &se) && p.ValCol > 0 {
			p.Col = p.ValCol + se.Offset
			if _, numeric := strconv.ParseFloat(string(text), 64); numeric != nil {
				p.Col++ // the opening quote
			}
		}
		errs.addErr(p, key, err, "%s = %q: %v", key, text, err)
	}
}

// validateTraffic checks the traffic keys of the top level.
func (c *Config) validateTraffic(errs *errList) {
	checkLimits(errs, func(k string) position { return c.at(k) }, func(k string) string { return k }, c.Limits)
	t := c.Total
	checkRate(errs, c.at("bwlimit_read_total"), "bwlimit_read_total", t.BWLimitRead, traffic.Bytes)
	checkRate(errs, c.at("bwlimit_write_total"), "bwlimit_write_total", t.BWLimitWrite, traffic.Bytes)
	checkRate(errs, c.at("max_messages_per_second_total"), "max_messages_per_second_total", t.MaxMessagesPerSecond, traffic.Messages)
	if c.MaxConnectionsTotal < 0 {
		errs.add(c.at("max_connections_total"), "max_connections_total", "max_connections_total must not be negative")
	}
	if _, err := c.Location(); err != nil {
		p := c.at("timezone")
		if p.ValCol > 0 {
			p.Col = p.ValCol
		}
		errs.add(p, "timezone", "timezone: %v", err)
	}
}

// checkLimits checks an account's (or the top level's) rates.
func checkLimits(errs *errList, at func(string) position, name func(string) string, l Limits) {
	checkRate(errs, at("bwlimit_read"), name("bwlimit_read"), l.BWLimitRead, traffic.Bytes)
	checkRate(errs, at("bwlimit_write"), name("bwlimit_write"), l.BWLimitWrite, traffic.Bytes)
	checkRate(errs, at("max_messages_per_second"), name("max_messages_per_second"), l.MaxMessagesPerSecond, traffic.Messages)
}
