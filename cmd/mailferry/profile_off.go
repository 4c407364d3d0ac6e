//go:build !mailferry_profile

package main

// startProfile does nothing in the binary users run: the profiling hook
// (profile_on.go) is built only with -tags mailferry_profile, by
// cmd/mailferry-bench's -profile on the fleet workload.
func startProfile(func(string) string) (stop func()) { return func() {} }
