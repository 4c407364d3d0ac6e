//go:build mailferry_profile

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// profileEnv names the directory a binary built with -tags
// mailferry_profile writes its profiles into: cpu-PREFIX.pprof (the whole
// command) and allocs-PREFIX.pprof (every allocation made, cumulative:
// `go tool pprof -sample_index=alloc_space`), where PREFIX is
// MAILFERRY_PROFILE_NAME's value. Only cmd/mailferry-bench sets them; the
// binary users run has no such variable (profile_off.go).
const (
	profileEnv     = "MAILFERRY_PROFILE_DIR"
	profileNameEnv = "MAILFERRY_PROFILE_NAME"
)

// startProfile starts the CPU profile when getenv names a directory; the
// function it returns stops it and writes the allocations. Failures are
// printed on stderr and leave the command to run unprofiled.
func startProfile(getenv func(string) string) (stop func()) {
	dir, name := getenv(profileEnv), getenv(profileNameEnv)
	if dir == "" {
		return func() {}
	}
	if name == "" {
		name = fmt.Sprint(os.Getpid())
	}
	f, err := os.Create(filepath.Join(dir, "cpu-"+name+".pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mailferry: profiling: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		runtime.GC()
		a, err := os.Create(filepath.Join(dir, "allocs-"+name+".pprof"))
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "mailferry: profiling: %v\n", err)
		}
	}
}
