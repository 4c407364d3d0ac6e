package pipeline

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// folderMsg is one message of a folderSource.
type folderMsg struct {
	uid     uint32
	body    []byte
	emailID string
	date    time.Time
}

// folderSource is an IMAP-like source of folders whose messages carry
// EMAILIDs (RFC 8474) that tests choose, as a server with OBJECTID gives
// them: kept when a message moves, never shared by two messages.
type folderSource struct {
	mu      sync.Mutex
	folders map[string][]folderMsg
	// uidValidity is a folder's UIDVALIDITY when not 1.
	uidValidity map[string]uint32
	fetched     int
	// afterNames, when set, runs after FolderNames answered.
	afterNames func()
}

func (s *folderSource) key(folder string, uid uint32) string {
	uv := s.uidValidity[folder]
	if uv == 0 {
		uv = 1
	}
	return fmt.Sprintf("%s\x00%d\x00%d", folder, uv, uid)
}

// place splits a key of s (Options.KeyFolder).
func (s *folderSource) place(key string) (KeyPlace, bool) {
	p := strings.Split(key, "\x00")
	if len(p) != 3 {
		return KeyPlace{}, false
	}
	uv, _ := strconv.Atoi(p[1])
	uid, _ := strconv.Atoi(p[2])
	return KeyPlace{Mailbox: p[0], Folder: p[0] + "\x00", Generation: p[0] + "\x00" + p[1] + "\x00",
		UIDValidity: uint32(uv), UID: uint32(uid)}, true
}

func (s *folderSource) List(_ context.Context, page func([]SourceMessage) error) error {
	s.mu.Lock()
	var out []SourceMessage
	for _, name := range s.names() {
		for _, m := range s.folders[name] {
			out = append(out, SourceMessage{Key: s.key(name, m.uid), Mailbox: name, Size: int64(len(m.body)),
				InternalDate: m.date, Flags: []string{}, EmailID: m.emailID})
		}
	}
	s.mu.Unlock()
	for chunk := range slices.Chunk(out, 3) {
		if err := page(chunk); err != nil {
			return err
		}
	}
	return nil
}

func (s *folderSource) names() []string {
	var names []string
	for n := range s.folders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *folderSource) FolderNames(context.Context) ([]string, error) {
	s.mu.Lock()
	names := s.names()
	s.mu.Unlock()
	if s.afterNames != nil {
		s.afterNames()
	}
	return names, nil
}

func (s *folderSource) Fetch(_ context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched++
	for _, m := range s.folders[msg.Mailbox] {
		if s.key(msg.Mailbox, m.uid) == msg.Key {
			n, err := w.Write(m.body)
			return int64(n), err
		}
	}
	return 0, ErrMessageGone
}

func (s *folderSource) Delete(context.Context, []SourceMessage) error { return nil }
func (s *folderSource) Close(bool) error                              { return nil }

// move moves the message uid of folder from to folder to, under the next
// UID there, keeping its bytes, date and EMAILID.
func (s *folderSource) move(from string, uid uint32, to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.folders[from], func(m folderMsg) bool { return m.uid == uid })
	m := s.folders[from][i]
	s.folders[from] = slices.Delete(s.folders[from], i, i+1)
	next := uint32(1)
	for _, o := range s.folders[to] {
		next = max(next, o.uid+1)
	}
	m.uid = next
	s.folders[to] = append(s.folders[to], m)
}

// Move moves exactly uids of mailbox to target (UID MOVE), keeping each
// copy's bytes, flags and internal date, and says where each went.
func (s *memDestSession) Move(_ context.Context, mailbox string, uidValidity uint32, uids []uint32, target string) (uint32, map[uint32]uint32, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	from := s.d.boxes[mailbox]
	if from == nil || from.uidValidity != uidValidity {
		return 0, nil, ErrUIDValidityChanged
	}
	to := s.d.boxes[target]
	if to == nil {
		to = &memMailbox{uidValidity: 7, uidNext: 1}
		s.d.boxes[target] = to
	}
	got := map[uint32]uint32{}
	from.msgs = slices.DeleteFunc(from.msgs, func(m storedMsg) bool {
		if !slices.Contains(uids, m.uid) {
			return false
		}
		got[m.uid] = to.uidNext
		m.uid = to.uidNext
		to.uidNext++
		to.msgs = append(to.msgs, m)
		return true
	})
	return to.uidValidity, got, nil
}

// TestMirrorMovesByEmailID: two messages of the same bytes, one in A and
// one in B (different internal dates, different EMAILIDs), are moved at
// the source, A's to D and B's to C. Their digests cannot tell which copy
// is which (digest-only matching pairs A's copy with C's message, the
// first listed, and the dates end up swapped); their EMAILIDs can: each
// copy moves to where its own message went, with its date, and nothing
// is read from the source to find the moves. Without EMAILIDs (a server
// without OBJECTID) the moves are still found, by digest.
func TestMirrorMovesByEmailID(t *testing.T) {
	body := []byte("From: a@example.org\r\nSubject: the same\r\nMessage-ID: <same@example.org>\r\n\r\nthe same bytes\r\n")
	dateA := time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC)
	dateB := time.Date(2021, 6, 1, 10, 0, 0, 0, time.UTC)
	for _, withIDs := range []bool{true, false} {
		t.Run(fmt.Sprint("EMAILIDs ", withIDs), func(t *testing.T) {
			idA, idB := "", ""
			if withIDs {
				idA, idB = "Maaaaaaaa", "Mbbbbbbbb"
			}
			src := &folderSource{folders: map[string][]folderMsg{
				"A": {{uid: 1, body: body, emailID: idA, date: dateA}},
				"B": {{uid: 1, body: body, emailID: idB, date: dateB}},
				"C": nil, "D": nil,
			}}
			h := newHarness(nil)
			h.opts.MapFolders = func(context.Context, Source, Destination, bool) (map[string]string, error) {
				return map[string]string{"A": "A", "B": "B", "C": "C", "D": "D"}, nil
			}
			h.opts.KeyFolder = src.place
			if st := h.runWith(t, src); st.Copied != 2 {
				t.Fatalf("bulk pass: copied %d, want 2", st.Copied)
			}
			for _, e := range h.ledger.all(alice) {
				if want := map[string]string{"A": idA, "B": idB}[e.DestMailbox]; e.EmailID != want {
					t.Errorf("entry %q: EMAILID %q, want %q", e.Key, e.EmailID, want)
				}
			}

			src.move("A", 1, "D")
			src.move("B", 1, "C")
			src.fetched = 0
			h.opts.Mirror = true
			st := h.runWith(t, src)
			if st.Moved != 2 || st.Copied != 0 || st.Removed != 0 {
				t.Fatalf("mirror pass: moved %d, copied %d, removed %d; want 2, 0, 0", st.Moved, st.Copied, st.Removed)
			}
			if withIDs && src.fetched != 0 {
				t.Errorf("the mirror pass read %d messages from the source to find moves their EMAILIDs name", src.fetched)
			}
			dates := map[string][]time.Time{}
			for name, mb := range h.dst.boxes {
				for _, m := range mb.msgs {
					dates[name] = append(dates[name], m.date)
				}
			}
			if len(dates["A"])+len(dates["B"]) != 0 || len(dates["C"]) != 1 || len(dates["D"]) != 1 {
				t.Fatalf("destination after the moves: %v; want one copy in C and one in D", dates)
			}
			if withIDs && (!dates["C"][0].Equal(dateB) || !dates["D"][0].Equal(dateA)) {
				t.Errorf("C's copy is dated %v (want B's %v), D's %v (want A's %v): the copies went to each other's folder",
					dates["C"][0], dateB, dates["D"][0], dateA)
			}
			for _, e := range h.ledger.all(alice) {
				if e.State != StateDone {
					continue
				}
				want := map[string]string{"C": idB, "D": idA}[e.DestMailbox]
				if withIDs && e.EmailID != want {
					t.Errorf("entry %q in %s after the move: EMAILID %q, want %q", e.Key, e.DestMailbox, e.EmailID, want)
				}
			}
		})
	}
}
