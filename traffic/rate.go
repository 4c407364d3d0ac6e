package traffic

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteUnits are the multipliers of a byte rate's units, as config.ByteSize
// reads sizes (powers of 1000 for k, M, G, KB, MB, GB; of 1024 for KiB,
// MiB, GiB), plus the one-letter forms rclone users write ("2M" is 2 MB).
var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// parseRate parses a positive rate: a number, for bytes an optional unit,
// and an optional "/s". pos is where s starts in the text, for errors.
func parseRate(s string, u Unit, pos int) (float64, error) {
	t := strings.TrimSuffix(strings.ToLower(s), "/s")
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, &SyntaxError{Offset: pos, Msg: fmt.Sprintf("%q is not a rate: %s", s, u.example())}
	}
	mult := 1.0
	if u == Bytes {
		m, ok := byteUnits[unit]
		if !ok {
			return 0, &SyntaxError{Offset: pos + i, Msg: fmt.Sprintf("unknown unit %q in %q: %s", t[i:], s, u.example())}
		}
		mult = m
	} else if unit != "" {
		return 0, &SyntaxError{Offset: pos + i, Msg: fmt.Sprintf("%q is not a number of messages per second: %s", s, u.example())}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, &SyntaxError{Offset: pos, Msg: fmt.Sprintf("%q is not a rate: %s", s, u.example())}
	}
	v := f * mult
	if v <= 0 || math.IsInf(v, 0) || v > 1e15 {
		return 0, &SyntaxError{Offset: pos, Msg: fmt.Sprintf("rate %q must be above 0 (write off for no limit)", s)}
	}
	return v, nil
}

// FormatRate prints a rate of u: "2 MB/s", "512 kB/s", "10 msg/s".
func FormatRate(v float64, u Unit) string {
	if u == Messages {
		return strconv.FormatFloat(v, 'g', 4, 64) + " msg/s"
	}
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', 4, 64) + " GB/s"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + " MB/s"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + " kB/s"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " B/s"
}
