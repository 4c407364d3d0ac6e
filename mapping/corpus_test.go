package mapping

import (
	"bufio"
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCorpus runs the header functions over a folder of real .eml files named
// by MAILFERRY_CORPUS (e.g. /work/shared/corpus/real). It needs no server;
// without the variable it is skipped. A MANIFEST.tsv in the folder, when
// present, supplies each file's traits (no-date) for the report.
//
// Each message must not panic, and a message whose Date: net/mail can parse
// to a believable date must get a date from its header, at the same instant
// where the zone is numeric (net/mail reads zone names through time.Local).
func TestCorpus(t *testing.T) {
	dir := os.Getenv("MAILFERRY_CORPUS")
	if dir == "" {
		t.Skip("MAILFERRY_CORPUS not set")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no .eml files in MAILFERRY_CORPUS=%s", dir)
	}
	traits := readManifestTraits(t, filepath.Join(dir, "MANIFEST.tsv"))
	now := time.Now()
	count := map[DateSource]int{}
	checked := 0
	for _, path := range files {
		name := filepath.Base(path)
		msg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h := HeaderSection(msg)
		Fields(h)
		id := MessageID(h)
		recv, recvSrc := InternalDate(h, DateReceived, now)
		hdr, hdrSrc := InternalDate(h, DateHeader, now)
		count[recvSrc]++
		if recv.IsZero() || hdr.IsZero() {
			t.Errorf("%s: InternalDate returned a zero time", name)
		}
		if whole, src := InternalDate(msg, DateReceived, now); !whole.Equal(recv) || src != recvSrc {
			t.Errorf("%s: InternalDate(message) = %v, %v, InternalDate(HeaderSection) = %v, %v", name, whole, src, recv, recvSrc)
		}

		m, err := mail.ReadMessage(bytes.NewReader(msg))
		if err != nil {
			t.Logf("%s: net/mail cannot read it (%v); only checked for panics", name, err)
			continue
		}
		if raw := m.Header.Get("Message-Id"); strings.Contains(raw, "<") && strings.Contains(raw, "@") && id == "" {
			t.Errorf("%s: MessageID = \"\", net/mail sees Message-Id %q", name, raw)
		}
		want, err := m.Header.Date()
		if err != nil || !usable(want, now) {
			if !traits[name]["no-date"] && hdrSrc == FromNow {
				t.Logf("%s: Date: %q unusable (net/mail: %v); falls back to now", name, m.Header.Get("Date"), err)
			}
			continue
		}
		checked++
		if hdrSrc != FromDate {
			t.Errorf("%s: InternalDate(DateHeader) source %v, want date (Date: %q)", name, hdrSrc, m.Header.Get("Date"))
		} else if strings.ContainsAny(m.Header.Get("Date"), "+-") && !hdr.Equal(want) {
			t.Errorf("%s: InternalDate(DateHeader) = %v, net/mail says %v (Date: %q)", name, hdr, want, m.Header.Get("Date"))
		}
		if recvSrc == FromNow {
			t.Errorf("%s: InternalDate(DateReceived) fell back to now despite a usable Date: %q", name, m.Header.Get("Date"))
		}
	}
	t.Logf("%d messages, %d with a Date: net/mail parses; received policy sources: received=%d date=%d now=%d",
		len(files), checked, count[FromReceived], count[FromDate], count[FromNow])
}

// readManifestTraits maps file names to their traits; empty without a manifest.
func readManifestTraits(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	col := -1
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "\t")
		if col < 0 {
			for i, c := range cells {
				if c == "traits" {
					col = i
				}
			}
			if col < 0 {
				return out
			}
			continue
		}
		if col < len(cells) {
			set := map[string]bool{}
			for _, tr := range strings.Split(cells[col], ",") {
				set[tr] = true
			}
			out[cells[0]] = set
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
