package imapsrc

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/pipeline"
)

// aheadMailbox is the scripted INBOX of the listing-ahead tests: UIDs 1
// to 4, sequence numbers 1 to 4, UID 3 flagged.
var aheadMailbox = map[int]string{
	1: "Subject: one\r\n\r\nfirst\r\n",
	2: "Subject: two\r\n\r\nsecond message\r\n",
	3: "Subject: three\r\n\r\nthe third\r\n",
	4: "Subject: four\r\n\r\nfourth and last\r\n",
}

// aheadUIDs returns the UIDs of a UID FETCH command line's set (numbers
// and ranges, as go-imap writes them).
func aheadUIDs(line string) []int {
	f := strings.Fields(line) // tag UID FETCH set (...)
	var out []int
	for _, r := range strings.Split(f[3], ",") {
		lo, hi, found := strings.Cut(r, ":")
		a, _ := strconv.Atoi(lo)
		b := a
		if found {
			b, _ = strconv.Atoi(hi)
		}
		for u := a; u <= b; u++ {
			if _, ok := aheadMailbox[u]; ok {
				out = append(out, u)
			}
		}
	}
	return out
}

// aheadAttrs is the listing reply for uid.
func aheadAttrs(uid int) string {
	flags := ""
	if uid == 3 {
		flags = `\Flagged`
	}
	return fmt.Sprintf("* %d FETCH (UID %d FLAGS (%s) INTERNALDATE \"01-Jan-2020 10:00:0%d +0000\" RFC822.SIZE %d)\r\n", uid, uid, flags, uid, len(aheadMailbox[uid]))
}

// aheadReplies are the untagged replies to a UID FETCH command line: the
// listing attributes, or the bodies.
func aheadReplies(line string) string {
	var b strings.Builder
	for _, u := range aheadUIDs(line) {
		if strings.Contains(line, "BODY") {
			b.WriteString(fetchResp(u, u, aheadMailbox[u], false))
		} else {
			b.WriteString(aheadAttrs(u))
		}
	}
	return b.String()
}

// aheadList lists INBOX through s in pages of two, fetching each page's
// bodies (announced by Prefetch) inside the page, as the copy does. It
// returns the listed messages, the bodies by UID, and List's error.
func aheadList(t *testing.T, s *Source) ([]pipeline.SourceMessage, map[uint32]string, error) {
	t.Helper()
	var listed []pipeline.SourceMessage
	bodies := map[uint32]string{}
	err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
		listed = append(listed, page...)
		if err := s.Prefetch(t.Context(), page); err != nil {
			return err
		}
		for _, m := range page {
			var b bytes.Buffer
			if _, err := s.Fetch(t.Context(), m, &b); err != nil {
				return err
			}
			_, _, uid, _ := ParseKey(m.Key)
			bodies[uid] = b.String()
		}
		return nil
	})
	return listed, bodies, err
}

// checkAheadListed checks that listed is the scripted INBOX, or its first
// n messages, each with its own size and flags.
func checkAheadListed(t *testing.T, listed []pipeline.SourceMessage, n int) {
	t.Helper()
	if len(listed) != n {
		t.Fatalf("listed %d messages, want %d: %+v", len(listed), n, listed)
	}
	for i, m := range listed {
		uid := i + 1
		_, _, got, _ := ParseKey(m.Key)
		flagged := slices.Contains(m.Flags, `\Flagged`)
		if got != uint32(uid) || m.Size != int64(len(aheadMailbox[uid])) || flagged != (uid == 3) || m.InternalDate.Second() != uid {
			t.Errorf("listed[%d] = UID %d, size %d, flags %q, date %v; want UID %d, size %d, flagged %v", i, got, m.Size, m.Flags, m.InternalDate, uid, len(aheadMailbox[uid]), uid == 3)
		}
	}
}

// TestListSendsNextPageAhead: List sends the next page's listing UID
// FETCH before it hands the current page over, so that at a distance its
// reply travels while the page's bodies are fetched (one round trip per
// page saved). The server answers each command as it comes; the order of
// the commands it got shows the pipelining.
func TestListSendsNextPageAhead(t *testing.T) {
	srv := startScript(t, func(int) map[string]handler {
		return map[string]handler{
			"LIST":       reply("* LIST () \"/\" INBOX\r\n$TAG OK done\r\n"),
			"UID SEARCH": reply("* SEARCH 1 2 3 4\r\n$TAG OK done\r\n"),
			"UID FETCH": func(tag, line string) (string, bool) {
				return aheadReplies(line) + "$TAG OK done\r\n", false
			},
		}
	})
	opts := srv.opts()
	opts.FetchBatch = 2
	s := openSource(t, opts)
	listed, bodies, err := aheadList(t, s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkAheadListed(t, listed, 4)
	for uid, want := range aheadMailbox {
		if bodies[uint32(uid)] != want {
			t.Errorf("body of UID %d = %q, want %q", uid, bodies[uint32(uid)], want)
		}
	}
	var fetches []string
	for _, c := range srv.received() {
		if f := strings.Fields(c); len(f) > 3 && f[1] == "UID" && f[2] == "FETCH" {
			kind := "list"
			if strings.Contains(c, "BODY") {
				kind = "bodies"
			}
			fetches = append(fetches, kind+" "+f[3])
		}
	}
	if want := []string{"list 1:2", "list 3:4", "bodies 1:2", "bodies 3:4"}; !slices.Equal(fetches, want) {
		t.Errorf("UID FETCH commands in the order sent: %q, want %q (the second page listed before the first page's bodies are asked for)", fetches, want)
	}
}

// TestListAheadReplies: the listing in flight and the page's bodies share
// the connection. A server may interleave their replies (Dovecot runs UID
// FETCH commands side by side); a NO to the listing in flight, or a body
// reply that does not parse, must neither corrupt nor misattribute the
// other command's replies: the bodies read are exact, the listed messages
// have their own attributes, and the failure ends the listing with an
// error instead of a page.
func TestListAheadReplies(t *testing.T) {
	body1 := aheadMailbox[1]
	tests := []struct {
		name string
		// bodies answers the first page's body UID FETCH; listTag is the
		// tag of the second page's listing, which the handler of that
		// listing left unanswered.
		bodies     func(tag, listTag string) string
		wantListed int    // messages handed over
		wantBodies int    // bodies fetched whole, from UID 1 on
		wantErr    string // in List's error ("": none)
	}{
		{
			name: "listing replies between the bodies",
			bodies: func(tag, listTag string) string {
				return fetchResp(1, 1, aheadMailbox[1], false) + aheadAttrs(3) +
					fetchResp(2, 2, aheadMailbox[2], false) + aheadAttrs(4) + listTag + " OK done\r\n" + tag + " OK done\r\n"
			},
			wantListed: 4,
			wantBodies: 4,
		},
		{
			name: "listing's tagged OK before the bodies",
			bodies: func(tag, listTag string) string {
				return aheadAttrs(3) + aheadAttrs(4) + listTag + " OK done\r\n" +
					fetchResp(1, 1, aheadMailbox[1], false) + fetchResp(2, 2, aheadMailbox[2], false) + tag + " OK done\r\n"
			},
			wantListed: 4,
			wantBodies: 4,
		},
		{
			name: "NO to the listing in flight",
			bodies: func(tag, listTag string) string {
				return fetchResp(1, 1, aheadMailbox[1], false) + listTag + " NO [SERVERBUG] listing failed\r\n" +
					fetchResp(2, 2, aheadMailbox[2], false) + tag + " OK done\r\n"
			},
			wantListed: 2,
			wantBodies: 2,
			wantErr:    "listing failed",
		},
		{
			name: "garbage after a body, the listing's replies after it",
			bodies: func(tag, listTag string) string {
				return fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n%sXX)\r\n", len(body1), body1) + aheadAttrs(3) + aheadAttrs(4) +
					listTag + " OK done\r\n" + fetchResp(2, 2, aheadMailbox[2], false) + tag + " OK done\r\n"
			},
			wantListed: 2,
			wantBodies: 0,
			wantErr:    "did not parse to its end",
		},
		{
			name: "literal announced too long, swallowing a listing reply",
			bodies: func(tag, listTag string) string {
				return fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n", len(body1)+len(")\r\n* 3 FETC"), body1) + aheadAttrs(3) + aheadAttrs(4) +
					listTag + " OK done\r\n" + fetchResp(2, 2, aheadMailbox[2], false) + tag + " OK done\r\n"
			},
			wantListed: 2,
			wantBodies: 0,
			wantErr:    "did not parse to its end",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var listTag string
			srv := startScript(t, func(int) map[string]handler {
				return map[string]handler{
					"LIST":       reply("* LIST () \"/\" INBOX\r\n$TAG OK done\r\n"),
					"UID SEARCH": reply("* SEARCH 1 2 3 4\r\n$TAG OK done\r\n"),
					"UID FETCH": func(tag, line string) (string, bool) {
						switch uids := aheadUIDs(line); {
						case !strings.Contains(line, "BODY") && uids[0] == 3:
							listTag = tag // answered with the bodies
							return "", false
						case strings.Contains(line, "BODY") && uids[0] == 1:
							return tt.bodies(tag, listTag), false
						}
						return aheadReplies(line) + "$TAG OK done\r\n", false
					},
				}
			})
			opts := srv.opts()
			opts.FetchBatch = 2
			s := openSource(t, opts)
			listed, bodies, err := aheadList(t, s)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("List: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("List = %v, want an error with %q", err, tt.wantErr)
			}
			if err != nil {
				t.Logf("List: %v", err)
			}
			checkAheadListed(t, listed, tt.wantListed)
			for uid := 1; uid <= 4; uid++ {
				got, ok := bodies[uint32(uid)]
				switch {
				case uid <= tt.wantBodies && got != aheadMailbox[uid]:
					t.Errorf("body of UID %d = %q, want %q", uid, got, aheadMailbox[uid])
				case uid > tt.wantBodies && ok:
					t.Errorf("body of UID %d fetched (%q), want none", uid, got)
				}
			}
		})
	}
}

// TestListAheadNotWithEmailIDs: a listing that asks for EMAILIDs (the
// server has OBJECTID) is not sent ahead, as imapconn.FetchExtra rewrites
// every FETCH while it is on: each page is listed after the last page's
// bodies, and every listed message has its EMAILID.
func TestListAheadNotWithEmailIDs(t *testing.T) {
	srv := startScript(t, func(int) map[string]handler {
		return map[string]handler{
			"LOGIN":      reply("$TAG OK [CAPABILITY IMAP4rev1 UIDPLUS OBJECTID] logged in\r\n"),
			"LIST":       reply("* LIST () \"/\" INBOX\r\n$TAG OK done\r\n"),
			"UID SEARCH": reply("* SEARCH 1 2 3 4\r\n$TAG OK done\r\n"),
			"UID FETCH": func(tag, line string) (string, bool) {
				if strings.Contains(line, "BODY") {
					return aheadReplies(line) + "$TAG OK done\r\n", false
				}
				var b strings.Builder
				for _, u := range aheadUIDs(line) {
					b.WriteString(strings.Replace(aheadAttrs(u), ")\r\n", fmt.Sprintf(" EMAILID (M%d))\r\n", u), 1))
				}
				return b.String() + "$TAG OK done\r\n", false
			},
		}
	})
	opts := srv.opts()
	opts.FetchBatch = 2
	s := openSource(t, opts)
	listed, bodies, err := aheadList(t, s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkAheadListed(t, listed, 4)
	for i, m := range listed {
		if want := fmt.Sprintf("M%d", i+1); m.EmailID != want || bodies[uint32(i+1)] != aheadMailbox[i+1] {
			t.Errorf("UID %d: EMAILID %q, body %q; want %q, %q", i+1, m.EmailID, bodies[uint32(i+1)], want, aheadMailbox[i+1])
		}
	}
	var fetches []string
	for _, c := range srv.received() {
		if f := strings.Fields(c); len(f) > 3 && f[1] == "UID" && f[2] == "FETCH" {
			kind := "list"
			if strings.Contains(c, "BODY") {
				kind = "bodies"
			}
			fetches = append(fetches, kind+" "+f[3])
		}
	}
	if want := []string{"list 1:2", "bodies 1:2", "list 3:4", "bodies 3:4"}; !slices.Equal(fetches, want) {
		t.Errorf("UID FETCH commands in the order sent: %q, want %q", fetches, want)
	}
}

// TestListSearchWithExamine: a folder's UID SEARCH goes out behind its
// EXAMINE, before EXAMINE's reply (issue 18: one round trip per folder
// less at a distance). The server here answers EXAMINE only once the
// UID SEARCH has arrived: waiting for EXAMINE's reply first would hang.
// A folder gone since the folder listing (EXAMINE answered NO
// [NONEXISTENT], the UID SEARCH behind it BAD: nothing is selected) is
// skipped, and that BAD is not taken as a refusal of ESEARCH: the next
// folder's UID SEARCH still asks RETURN (ALL).
func TestListSearchWithExamine(t *testing.T) {
	srv := startScript(t, func(int) map[string]handler {
		var examined, selected string // EXAMINE's tag held back; the mailbox it opens
		return map[string]handler{
			"LOGIN": reply("$TAG OK [CAPABILITY IMAP4rev1 UIDPLUS ESEARCH] logged in\r\n"),
			"LIST":  reply("* LIST () \"/\" Gone\r\n* LIST () \"/\" INBOX\r\n$TAG OK done\r\n"),
			"EXAMINE": func(tag, line string) (string, bool) {
				examined, selected = tag, ""
				if strings.Contains(line, "INBOX") {
					selected = "INBOX"
				}
				return "", false
			},
			"UID SEARCH": func(tag, line string) (string, bool) {
				held := strings.ReplaceAll("$TAG NO [NONEXISTENT] no such mailbox\r\n", "$TAG", examined)
				if selected == "" {
					return held + "$TAG BAD no mailbox selected\r\n", false
				}
				held = strings.ReplaceAll("* 4 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n$TAG OK [READ-ONLY] done\r\n", "$TAG", examined)
				return held + "* ESEARCH (TAG \"$TAG\") UID ALL 1:4\r\n$TAG OK done\r\n", false
			},
			"UID FETCH": func(tag, line string) (string, bool) {
				return aheadReplies(line) + "$TAG OK done\r\n", false
			},
		}
	})
	s := openSource(t, srv.opts())
	listed, _, err := aheadList(t, s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	checkAheadListed(t, listed, 4)
	var searches []string
	for _, c := range srv.received() {
		if strings.Contains(c, "UID SEARCH") {
			searches = append(searches, c)
		}
	}
	if len(searches) != 2 || !strings.Contains(searches[1], "RETURN (ALL)") {
		t.Errorf("UID SEARCH commands: %q; want one per folder, INBOX's with RETURN (ALL)", searches)
	}
}
