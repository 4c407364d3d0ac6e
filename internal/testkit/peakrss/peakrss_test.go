package peakrss

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadVmHWM(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status string
		want   int64
		ok     bool
	}{
		{"linux status", "Name:\tmailferry\nVmPeak:\t  812344 kB\nVmHWM:\t   45120 kB\nVmRSS:\t   40000 kB\n", 45120, true},
		{"no VmHWM line", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, false},
		{"empty value", "VmHWM:\n", 0, false},
		{"not a number", "VmHWM:\tlots kB\n", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "status")
			if err := os.WriteFile(path, []byte(tc.status), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := readVmHWM(path)
			if got != tc.want || ok != tc.ok {
				t.Errorf("readVmHWM(%q) = %d, %v; want %d, %v", tc.status, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWatchPeakRSSOfThisProcess(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	peak := Watch(os.Getpid())()
	if peak <= 0 {
		t.Fatalf("Watch(self) = %d KB, want a positive peak", peak)
	}
}
