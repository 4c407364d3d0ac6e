package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// The linker sets these (scripts/package.sh):
//
//	-ldflags "-X main.buildVersion=$(git describe --tags --always --dirty)
//	          -X main.buildCommit=$(git rev-parse HEAD) -X main.buildDate=..."
//
// They are package variables only because -X can set nothing else; nothing
// writes them at run time. A binary built without them (go install, go build)
// falls back to what the Go toolchain recorded: the module version and the
// VCS revision and commit time.
var (
	buildVersion string
	buildCommit  string
	buildDate    string
)

// versionInfo is what `mailferry version` prints.
type versionInfo struct {
	Version   string // git describe, the module version, or "devel"
	Commit    string // full revision, or "unknown"
	Modified  bool   // built from a tree with uncommitted changes (VCS info only)
	GoVersion string
	Date      string // build date (ldflags), else the commit time (VCS info), else "unknown"
	DateKind  string // "built" or "committed"
}

// linkFlags are the values the linker set.
type linkFlags struct{ version, commit, date string }

// readVersion decides what to print from the link-time values and the
// toolchain's build info (nil when there is none). The link-time values win:
// they come from git describe at packaging time.
func readVersion(ld linkFlags, bi *debug.BuildInfo, goVersion string) versionInfo {
	v := versionInfo{Version: "devel", Commit: "unknown", GoVersion: goVersion, Date: "unknown", DateKind: "built"}
	var vcsRev, vcsTime string
	if bi != nil {
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
		// go install module@v1.2.3 records v1.2.3; a build in a git
		// checkout records a pseudo-version from the tags; "(devel)" says
		// neither is known.
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if vcsRev != "" {
		v.Commit = vcsRev
	}
	if vcsTime != "" {
		v.Date, v.DateKind = vcsTime, "committed"
	}
	if ld.version != "" {
		v.Version = ld.version
	}
	if ld.commit != "" {
		v.Commit = ld.commit
		// git describe --dirty says it in the version; the VCS stamp,
		// if any, is of the same tree.
	}
	if ld.date != "" {
		v.Date, v.DateKind = ld.date, "built"
	}
	return v
}

// currentVersion is this binary's version.
func currentVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return readVersion(linkFlags{buildVersion, buildCommit, buildDate}, bi, runtime.Version())
}

// version is the one-word version, for the man page and logs.
func version() string { return currentVersion().Version }

func (v versionInfo) write(w io.Writer) {
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "mailferry %s\ncommit:    %s\ngo:        %s\n%-10s %s\n",
		v.Version, commit, v.GoVersion, v.DateKind+":", v.Date)
}

const versionHelp = `mailferry version - the version of this binary

USAGE
  mailferry version
  mailferry --version

Prints the version (git describe of the source it was built from, or the
module version for go install), the commit, the Go version it was built with
and the build date. A binary built without the release build's link flags
shows the commit and the commit time the Go toolchain recorded, when it
recorded them.

` + exitStatusHelp

func runVersion(args []string, e *env) (int, error) {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	if done, err := parseFlags(fs, args, e, versionHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if fs.NArg() != 0 {
		return exitUsage, usagef("unexpected arguments %q", fs.Args())
	}
	currentVersion().write(e.stdout)
	return exitOK, nil
}
