package config

import (
	"strings"
	"testing"
	"time"
)

// TestLoadServiceKeys: every, idle and metrics_addr are read, and bad
// values are errors naming the key.
func TestLoadServiceKeys(t *testing.T) {
	tests := []struct {
		name      string
		top       string
		wantEvery time.Duration
		wantIdle  bool
		wantAddr  string
		wantErr   string
	}{
		{"defaults", "", 0, true, "", ""},
		{"all set", "every = \"2m\"\nidle = false\nmetrics_addr = \"127.0.0.1:9464\"\n", 2 * time.Minute, false, "127.0.0.1:9464", ""},
		{"days", "every = \"1d\"\n", 24 * time.Hour, true, "", ""},
		{"too short", "every = \"10ms\"\n", 0, false, "", "every must be at least 1s"},
		{"negative", "every = \"-1m\"\n", 0, false, "", "every"},
		{"no port", "metrics_addr = \"localhost\"\n", 0, false, "", "metrics_addr must be host:port"},
		{"not a duration", "every = 5\n", 0, false, "", "every"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load(writeConfig(t, tt.top+minimal))
			if err == nil {
				err = c.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load+Validate(%q) = %v, want an error containing %q", tt.top, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load+Validate(%q) = %v", tt.top, err)
			}
			if c.Every != tt.wantEvery || c.Idle != tt.wantIdle || c.MetricsAddr != tt.wantAddr {
				t.Errorf("Load(%q): every %v, idle %v, metrics_addr %q; want %v, %v, %q",
					tt.top, c.Every, c.Idle, c.MetricsAddr, tt.wantEvery, tt.wantIdle, tt.wantAddr)
			}
		})
	}
}
