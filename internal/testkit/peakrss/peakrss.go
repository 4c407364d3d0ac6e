// Package peakrss measures the peak resident set (VmHWM) of another process
// from /proc, for the benchmark and the soak test. Rusage.Maxrss of a child
// would include the parent's own peak when the child was forked from it;
// VmHWM is the child's own address space after execve.
package peakrss

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// rssPollInterval is how often Watch reads /proc.
const rssPollInterval = 10 * time.Millisecond

// Watch polls /proc/PID/status for VmHWM, the peak resident set of
// the process's own address space (after execve, so not this process's),
// until the returned function is called; that function returns the last
// peak seen, in KB, or 0 when /proc could not be read.
func Watch(pid int) func() int64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(rssPollInterval)
		defer t.Stop()
		for {
			if kb, ok := readVmHWM(path); ok && kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// readVmHWM reads the "VmHWM:  1234 kB" line of a /proc status file.
func readVmHWM(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}
