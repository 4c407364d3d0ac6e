package mapping

import (
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mailDateCases are dates mailParseDate must read as net/mail.ParseDate
// does: the shape it reads itself, and near misses that must go to
// ParseDate.
var mailDateCases = []string{
	"Tue, 3 Jun 2008 10:20:30 +0200",
	"Tue, 03 Jun 2008 10:20:30 -0000",
	"Tue, 3 Jun 2008 10:20:30 +0200 (CEST)",
	"Fri, 25 May 2018 08:21:15 +0000 (UTC)",
	"Tue, 3 Jun 2008 10:20:30 +0200 (Central European Summer Time)",
	"Wed, 30 Dec 2020 01:23:45 0000",
	"Tue, 3 Jun 2008 10:20:30 +0200 (CEST",
	"Tue, 3 Jun 2008 10:20:30 +0200 ((CEST))",
	"Tue, 3 Jun 2008 10:20:30 +0200 (C-EST)",
	"Tue, 3 Jun 2008 10:20:30 +0200x",
	"Tue, 3 Jun 2008 10:20:30 +02000",
	"Tue, 3 Jun 08 10:20:30 +0200",
	"Tue,  3 Jun 2008 10:20:30 +0200",
	"Tue, 3 Jun 2008 10:20 +0200",
	"Tue, 31 Jun 2008 10:20:30 +0200",
	"Tue, 3 Jun 2008 25:20:30 +0200",
	"Xyz, 3 Jun 2008 10:20:30 +0200",
	"Tue, 3 Foo 2008 10:20:30 +0200",
	"tue, 3 jun 2008 10:20:30 +0200",
	"Tue, 3 Jun 2008 10:20:30 +2400",
	"Tue, 3 Jun 2008 10:20:30 -9959",
	"Tue, 3 Jun 2008 10:20:30 +0200 ()",
	"Tue, 3 Jun 2008 10:20:30 +0200\r\n (CEST)",
	"3 Jun 2008 10:20:30 +0200",
	"Tue, 3 Jun 2008 10:20:30 GMT",
}

// TestMailParseDateMatchesNetMail: mailParseDate answers what
// net/mail.ParseDate answers, the same instant in the same zone or an
// error alike, for the cases above and for every Date: and Received: date
// of the corpus named by MAILFERRY_CORPUS, when set.
func TestMailParseDateMatchesNetMail(t *testing.T) {
	cases := append([]string{}, mailDateCases...)
	fast := 0
	if dir := os.Getenv("MAILFERRY_CORPUS"); dir != "" {
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			msg, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			h := HeaderSection(msg)
			cases = append(cases, Values(h, "Date")...)
			for _, v := range Values(h, "Received") {
				if i := strings.LastIndexByte(v, ';'); i >= 0 {
					cases = append(cases, strings.TrimSpace(v[i+1:]))
				}
			}
		}
	}
	for _, s := range cases {
		if plainDate(s) > 0 {
			fast++
		}
		sameParse(t, s)
	}
	if fast < 5 {
		t.Errorf("only %d of %d dates took the fast path", fast, len(cases))
	}
	t.Logf("%d dates, %d in the plain shape", len(cases), fast)
}

func sameParse(t *testing.T, s string) {
	t.Helper()
	got, gotErr := mailParseDate(s)
	want, wantErr := mail.ParseDate(s)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("mailParseDate(%q) error %v, net/mail.ParseDate error %v", s, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	gn, gOff := got.Zone()
	wn, wo := want.Zone()
	if !got.Equal(want) || gn != wn || gOff != wo || got.Location().String() != want.Location().String() {
		t.Fatalf("mailParseDate(%q) = %v, net/mail.ParseDate = %v", s, got, want)
	}
}

func FuzzMailParseDate(f *testing.F) {
	for _, s := range mailDateCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { sameParse(t, s) })
}

// BenchmarkParseDate is parsing one Received: date of the usual shape,
// as each POP3 message's internal date takes (policy "received").
func BenchmarkParseDate(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := parseDate(" Tue, 3 Jun 2008 10:20:30 +0200 (CEST)"); !ok {
			b.Fatal("not parsed")
		}
	}
}
