package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that decodes from TOML text only: Go duration
// syntax ("90s", "5m", "1h30m") plus "d" for days of 24 hours ("30d", "1d12h").
// A bare TOML integer is refused instead of being read as nanoseconds
// (BurntSushi/toml v1.6.0 turns `timeout = 30` into 30ns for time.Duration).
// Negative durations are refused.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

const durationHint = `use a number with a unit, e.g. "90s", "5m", "2h", "30d"`

// ParseDuration parses Go duration syntax extended with a "d" unit of 24
// hours. Units may be combined ("1d12h"); a fraction is allowed ("1.5d").
func ParseDuration(s string) (time.Duration, error) {
	in := s
	if s == "" {
		return 0, fmt.Errorf("empty duration (%s)", durationHint)
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("invalid duration %q (%s)", in, durationHint)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		num, unit := s[:i], s[i:j]
		s = s[j:]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("invalid duration %q (%s)", in, durationHint)
		}
		var part time.Duration
		if unit == "d" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f*24*float64(time.Hour) >= math.MaxInt64 {
				return 0, fmt.Errorf("invalid duration %q (%s)", in, durationHint)
			}
			part = time.Duration(f * 24 * float64(time.Hour))
		} else {
			v, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q (%s)", in, durationHint)
			}
			part = v
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("duration %q is too long", in)
		}
		total += part
	}
	if neg {
		total = -total
	}
	return total, nil
}

// ByteSize is a size in bytes that decodes from a TOML integer (1048576) or a
// string with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB,
// TiB (powers of 1024), case-insensitive, optionally with a space ("25 MiB").
// Negative sizes are refused.
type ByteSize int64

// UnmarshalText implements encoding.TextUnmarshaler. BurntSushi/toml hands a
// TOML integer to it as its decimal text.
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := ParseByteSize(string(t))
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

var errByteSize = errors.New(`use bytes or a number with a unit, e.g. 1048576, "25MB", "16MiB"`)

// ParseByteSize parses a size such as "1048576", "25MB" or "1.5 GiB".
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if num == "" || mult == 0 {
		return 0, fmt.Errorf("invalid size %q: %w", s, errByteSize)
	}
	if unit == "" || unit == "b" {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid size %q: %w", s, errByteSize)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: %w", s, errByteSize)
	}
	return int64(f * mult), nil
}

// FormatByteSize prints n in SI units, as ParseByteSize reads them: "512 B",
// "1.5 MB", "2.0 GB".
func FormatByteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
