package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	vcs := func(rev, when, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: when}, {Key: "vcs.modified", Value: modified},
		}}
	}
	tests := []struct {
		name string
		ld   linkFlags
		bi   *debug.BuildInfo
		want versionInfo
	}{
		{"release build: the link flags", linkFlags{"v1.2.0-3-gabc1234", "abc1234ffff", "2026-12-06T10:00:00Z"}, vcs("abc1234ffff", "2026-12-05T09:00:00Z", "false"),
			versionInfo{Version: "v1.2.0-3-gabc1234", Commit: "abc1234ffff", GoVersion: "go1.26.1", Date: "2026-12-06T10:00:00Z", DateKind: "built"}},
		{"go build in a checkout: the VCS stamp", linkFlags{}, vcs("0123456789abcdef", "2026-12-05T09:00:00Z", "true"),
			versionInfo{Version: "devel", Commit: "0123456789abcdef", Modified: true, GoVersion: "go1.26.1", Date: "2026-12-05T09:00:00Z", DateKind: "committed"}},
		{"go install module@version: the module version", linkFlags{},
			&debug.BuildInfo{GoVersion: "go1.26.2", Main: debug.Module{Version: "v1.3.0"}},
			versionInfo{Version: "v1.3.0", Commit: "unknown", GoVersion: "go1.26.2", Date: "unknown", DateKind: "built"}},
		{"go build with a pseudo-version from the tags", linkFlags{}, func() *debug.BuildInfo {
			bi := vcs("fedcba", "2026-12-01T00:00:00Z", "false")
			bi.Main.Version = "v1.2.1-0.20261201000000-fedcba+dirty"
			return bi
		}(), versionInfo{Version: "v1.2.1-0.20261201000000-fedcba+dirty", Commit: "fedcba", GoVersion: "go1.26.1", Date: "2026-12-01T00:00:00Z", DateKind: "committed"}},
		{"nothing recorded", linkFlags{}, nil,
			versionInfo{Version: "devel", Commit: "unknown", GoVersion: "go-runtime", Date: "unknown", DateKind: "built"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readVersion(tc.ld, tc.bi, "go-runtime"); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runInProcess(t, func(string) string { return "" }, args...)
		if r.code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "mailferry ") || !strings.HasPrefix(lines[1], "commit:") ||
			!strings.HasPrefix(lines[2], "go:        go1.") || !(strings.HasPrefix(lines[3], "built:") || strings.HasPrefix(lines[3], "committed:")) {
			t.Errorf("%v printed:\n%s", args, r.stdout)
		}
	}
	if r := runInProcess(t, func(string) string { return "" }, "version", "extra"); r.code != exitUsage {
		t.Errorf("version extra: exit %d, want %d", r.code, exitUsage)
	}
}
