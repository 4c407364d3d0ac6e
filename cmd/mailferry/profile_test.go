//go:build !mailferry_profile

package main

import (
	"os"
	"testing"
)

// TestNoProfileHook: the binary users run ignores the bench's profiling
// variables (only a build with -tags mailferry_profile writes profiles).
func TestNoProfileHook(t *testing.T) {
	dir := t.TempDir()
	stop := startProfile(func(k string) string {
		return map[string]string{"MAILFERRY_PROFILE_DIR": dir, "MAILFERRY_PROFILE_NAME": "x"}[k]
	})
	stop()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("the profile directory holds %v (%v), want nothing", ents, err)
	}
}
