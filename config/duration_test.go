package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"days", "30d", 30 * 24 * time.Hour, false},
		{"days and hours", "1d12h", 36 * time.Hour, false},
		{"fractional days", "1.5d", 36 * time.Hour, false},
		{"seconds", "90s", 90 * time.Second, false},
		{"go compound", "1h30m", 90 * time.Minute, false},
		{"milliseconds", "250ms", 250 * time.Millisecond, false},
		{"zero", "0", 0, false},
		{"negative", "-2h", -2 * time.Hour, false},
		{"empty", "", 0, true},
		{"bare number", "30", 0, true},
		{"words", "5 minutes", 0, true},
		{"unknown unit", "3w", 0, true},
		{"sign only", "-", 0, true},
		{"unit only", "d", 0, true},
		{"overflow days", "300000d", 0, true},
		{"overflow sum", "2562047h2562047h", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDurationUnmarshalText(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Duration
		wantErr bool
	}{
		{"days", "30d", Duration(30 * 24 * time.Hour), false},
		{"minutes", "5m", Duration(5 * time.Minute), false},
		{"negative refused", "-5m", 0, true},
		{"integer text refused", "30", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if (err != nil) != tt.wantErr || d != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v, error %v", tt.in, d, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"plain bytes", "1048576", 1 << 20, false},
		{"B suffix", "512B", 512, false},
		{"MB", "25MB", 25e6, false},
		{"MiB with space", "16 MiB", 16 << 20, false},
		{"lower case", "2gib", 2 << 30, false},
		{"fraction", "1.5KiB", 1536, false},
		{"zero", "0", 0, false},
		{"negative", "-1", 0, true},
		{"unknown unit", "5XB", 0, true},
		{"no number", "MB", 0, true},
		{"fraction without unit", "1.5", 0, true},
		{"overflow", "9999999TB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormatByteSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{1500000, "1.5 MB"},
		{16 << 20, "16.8 MB"},
		{2e9, "2.0 GB"},
	}
	for _, tc := range tests {
		if got := FormatByteSize(tc.n); got != tc.want {
			t.Errorf("FormatByteSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
		if tc.n < 1000 {
			continue
		}
		// What it prints reads back within its rounding.
		back, err := ParseByteSize(strings.ReplaceAll(FormatByteSize(tc.n), " ", ""))
		if err != nil || back < tc.n*95/100 || back > tc.n*105/100 {
			t.Errorf("ParseByteSize(FormatByteSize(%d)) = %d, %v", tc.n, back, err)
		}
	}
}
