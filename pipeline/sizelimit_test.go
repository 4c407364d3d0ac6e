package pipeline

import (
	"slices"
	"strings"
	"testing"
)

// sizedMessage is a message of exactly n bytes with CRLF line ends.
func sizedMessage(subject string, n int) []byte {
	head := "Subject: " + subject + "\r\n\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len() < n-2 {
		line := strings.Repeat("x", min(70, n-2-b.Len()))
		if b.Len()+len(line)+2 > n-2 && len(line) > 2 {
			line = line[:len(line)-2]
		}
		b.WriteString(line)
		if b.Len() < n-2 {
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String()[:n])
}

// TestSizeLimitBeforeAndWhileFetching: with a 10,000-byte limit, a message
// announced far over it is skipped without a Fetch; one announced small
// that turns out over it is stopped once the spool has taken the limit,
// never appended, and recorded with the reason; one a little over by its
// announcement but fitting is copied (a small disagreement skips nothing);
// one of exactly the limit is copied.
func TestSizeLimitBeforeAndWhileFetching(t *testing.T) {
	const limit = 10000
	msgs := []memMsg{
		{"huge", sizedMessage("huge", 500)},
		{"liar", sizedMessage("liar", 50000)},
		{"exact", sizedMessage("exact", limit)},
		{"close", sizedMessage("close", 9000)},
		{"over", sizedMessage("over", limit+1)},
		{"small", sizedMessage("small", 300)},
	}
	for _, m := range msgs {
		if len(m.body) != map[string]int{"huge": 500, "liar": 50000, "exact": limit, "close": 9000, "over": limit + 1, "small": 300}[m.key] {
			t.Fatalf("sizedMessage(%s) made %d bytes", m.key, len(m.body))
		}
	}
	h := newHarness(msgs)
	h.opts.MaxMessageBytes = limit
	h.src.announce = map[string]int64{"huge": 1 << 40, "liar": 100, "close": limit + limit/16}
	h.src.chunk = 1000
	h.src.accepted = map[string]int64{}
	st := h.run(t)

	if slices.Contains(h.src.fetched, "huge") {
		t.Errorf("the message announced at 1 TiB was fetched (fetches %q)", h.src.fetched)
	}
	if got := h.src.accepted["liar"]; got > limit || got == 0 {
		t.Errorf("the spool took %d bytes of the 50,000-byte message announced at 100, want 1 to %d", got, limit)
	}
	reasons := map[string]string{}
	for _, s := range st.Skips {
		reasons[s.Key] = s.Reason
	}
	for key, want := range map[string]string{
		"huge": "too big: the source announces 1099511627776 bytes, the limit is 10000 (max message size); not downloaded",
		"liar": "too big: more than 10000 bytes, the limit (max message size), though the source announced 100; download stopped",
		"over": "too big: more than 10000 bytes, the limit (max message size), though the source announced 10001; download stopped",
	} {
		if reasons[key] != want {
			t.Errorf("skip reason of %s = %q, want %q", key, reasons[key], want)
		}
		if e := h.ledger.entries[alice][key]; e.State != StateSkipped || e.Reason != want {
			t.Errorf("ledger entry of %s = %+v, want skipped with the reason", key, e)
		}
	}
	if st.Copied != 3 || st.Skipped != 3 || len(st.Skips) != 3 {
		t.Errorf("copied %d, skipped %d (%v); want 3 and 3", st.Copied, st.Skipped, st.Skips)
	}
	want := []string{string(msgs[2].body), string(msgs[3].body), string(msgs[5].body)}
	slices.Sort(want)
	if got := h.dst.bodies("INBOX"); !slices.Equal(got, want) {
		t.Errorf("destination holds %d messages, want exact, close and small", len(got))
	}

	// A second run fetches nothing: the skips are for good.
	h.src.fetched = nil
	st = h.run(t)
	if len(h.src.fetched) != 0 || st.Copied != 0 || st.Skipped != 0 || st.SkippedBefore != 3 {
		t.Errorf("second run: fetched %q, copied %d, skipped %d, before %d; want nothing fetched, 3 earlier skips reported", h.src.fetched, st.Copied, st.Skipped, st.SkippedBefore)
	}
}

// TestSizeLimitCountsAddHeader: the limit applies to what is sent, the
// AddHeader field included, before fetching and while fetching.
func TestSizeLimitCountsAddHeader(t *testing.T) {
	const limit = 1000
	header := func(m SourceMessage) string { return "X-UIDL: " + m.Key + "\r\n" } // 12 bytes for "a1" and "a2"
	h := newHarness([]memMsg{{"a1", sizedMessage("fits", limit-12)}, {"a2", sizedMessage("over", limit-11)}})
	h.opts.MaxMessageBytes = limit
	h.opts.AddHeader = header
	st := h.run(t)
	if st.Copied != 1 || st.Skipped != 1 || len(st.Skips) != 1 || st.Skips[0].Key != "a2" {
		t.Fatalf("copied %d, skips %v; want a1 copied at exactly the limit, a2 skipped", st.Copied, st.Skips)
	}
	if got := h.dst.bodies("INBOX"); len(got) != 1 || len(got[0]) != limit {
		t.Errorf("destination holds %d messages (first %d bytes), want one of %d", len(got), len(got[0]), limit)
	}
}
