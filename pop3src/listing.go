package pop3src

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/pipeline"
)

// The listing of a maildrop is read with one UIDL and one LIST, each
// streamed into a temporary file (unlinked while open: nothing is left
// behind, whatever happens), and handed to the engine a page at a time
// from there (issue 20: flat memory). Two commands for the whole maildrop
// cost the server far less than a LIST n and a UIDL n per message, and a
// page's callback may use the session: the replies are read to their ends
// before the first page goes out. The file holds some 30 bytes a message.
//
// The UIDL listing is read first, alone: it is all ListSummary needs, and
// the LIST is sent only when the listing is handed over (List). A re-run
// with nothing new (the summary the same as the last complete pass's) so
// asks for no sizes: they decide nothing for a message whose key has a
// settled entry, and reading and sending 500,000 of them cost both sides
// a tenth to a third of such a run (issue 20).
//
// While the UIDL listing streams, a 32-bit hash of each UIDL is kept (4
// bytes a message, dropped before the first page): hashes seen twice are
// checked against the UIDLs themselves, read back from the file, so that
// shared UIDLs (a broken server) are found without a map of every UIDL.

// listing is a maildrop's last listing, spilled to a file.
type listing struct {
	f       *os.File
	listOff int64 // the UIDL section ends and the LIST section starts here
	end     int64
	sized   bool // the LIST section is read (sizes)
	count   int  // messages the UIDL listing names
	summary pipeline.ListSummary
}

func (l *listing) close() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// spillFile creates the listing's temporary file, removed at once (on
// systems that refuse to remove an open file, when it is closed).
func spillFile() (*os.File, func(), error) {
	f, err := os.CreateTemp("", "mailferry-pop3-listing-*")
	if err != nil {
		return nil, nil, fmt.Errorf("creating a file for the listing: %w", err)
	}
	if os.Remove(f.Name()) == nil {
		return f, func() {}, nil
	}
	name := f.Name()
	return f, func() { os.Remove(name) }, nil
}

// errUnordered: the server listed messages out of number order; the
// listing is then read into memory instead.
var errUnordered = errors.New("listing not in message number order")

// spill reads the UIDL listing into a file, finds shared UIDLs and sums
// the listing up: the count of UIDLs and a digest of them in order, with
// the keys made from content. It reports false when the server has no
// UIDL after all, and errUnordered when the listing is not in ascending
// number order. The sizes come later (sizes).
func (s *Source) spill(ctx context.Context) (*listing, bool, error) {
	f, cleanup, err := spillFile()
	if err != nil {
		return nil, false, err
	}
	l := &listing{f: f}
	ok := false
	defer func() {
		cleanup()
		if !ok {
			l.close()
		}
	}()
	digest := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, digest), 64<<10)
	seed := maphash.MakeSeed()
	var hashes []uint32
	last := 0
	unordered := false // the reply is read to its end all the same
	// ascending: every UIDL so far sorts after the one before (Dovecot's,
	// from their UIDs), so none is shared: no hashes are kept until one
	// does not, and then those of the UIDLs before it are read back.
	ascending := true
	var buf, prev []byte
	// Each line's bytes, not a string of it: nothing is allocated per
	// message (issue 20).
	err = s.c.uidlLines(ctx, func(n int, uid []byte) error {
		if unordered = unordered || n <= last; unordered {
			return nil
		}
		last = n
		l.count++
		if ascending {
			if l.count == 1 || bytes.Compare(uid, prev) > 0 {
				prev = append(prev[:0], uid...)
			} else {
				ascending = false
				var err error
				if hashes, err = hashesBefore(f, w, seed); err != nil {
					return err
				}
			}
		}
		if !ascending {
			hashes = append(hashes, uint32(maphash.Bytes(seed, uid)))
		}
		buf = strconv.AppendInt(buf[:0], int64(n), 10)
		buf = append(buf, ' ')
		buf = append(buf, uid...)
		buf = append(buf, '\n')
		_, err := w.Write(buf)
		return err
	})
	if errors.Is(err, ErrNoUIDL) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if unordered {
		return nil, true, errUnordered
	}
	if err := w.Flush(); err != nil {
		return nil, false, fmt.Errorf("writing the listing: %w", err)
	}
	if l.listOff, err = f.Seek(0, io.SeekCurrent); err != nil {
		return nil, false, fmt.Errorf("writing the listing: %w", err)
	}
	s.maxNum = last

	// Shared UIDLs: hashes seen twice, then the UIDLs behind them.
	slices.Sort(hashes)
	shared := map[uint32]bool{}
	for i := 1; i < len(hashes); i++ {
		if hashes[i] == hashes[i-1] {
			shared[hashes[i]] = true
		}
	}
	hashes = nil
	if len(shared) > 0 {
		if err := s.sharedUIDLs(ctx, l, func(uid string) bool { return shared[uint32(maphash.String(seed, uid))] }); err != nil {
			return nil, false, err
		}
	}

	// The keys made from content belong to the listing too.
	nums := make([]int, 0, len(s.special))
	for n := range s.special {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		fmt.Fprintf(digest, "%d %s\n", n, s.special[n])
	}
	l.summary = pipeline.ListSummary{Messages: l.count, Digest: listingDigest(digest)}
	ok = true
	return l, true, nil
}

// hashesBefore returns the hashes of the UIDLs written to f so far
// (through w, flushed first).
func hashesBefore(f *os.File, w *bufio.Writer, seed maphash.Seed) ([]uint32, error) {
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("writing the listing: %w", err)
	}
	end, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("writing the listing: %w", err)
	}
	var hashes []uint32
	r := bufio.NewReader(io.NewSectionReader(f, 0, end))
	for {
		line, err := r.ReadSlice('\n')
		if err == io.EOF {
			return hashes, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the listing back: %w", err)
		}
		_, uid, _ := bytes.Cut(line[:len(line)-1], []byte{' '})
		hashes = append(hashes, uint32(maphash.Bytes(seed, uid)))
	}
}

// sizes reads the LIST listing into the file after the UIDL section,
// once: the listing is then ready to be handed over (each). It reports
// errUnordered when the listing is not in ascending number order.
func (s *Source) sizes(ctx context.Context, l *listing) error {
	if l.sized {
		return nil
	}
	if _, err := l.f.Seek(l.listOff, io.SeekStart); err != nil {
		return fmt.Errorf("writing the listing: %w", err)
	}
	w := bufio.NewWriterSize(l.f, 64<<10)
	last := 0
	unordered := false // the reply is read to its end all the same
	var buf []byte
	err := s.c.ListEach(ctx, func(m MessageInfo) error {
		if unordered = unordered || m.Number <= last; unordered {
			return nil
		}
		last = m.Number
		buf = strconv.AppendInt(buf[:0], int64(m.Number), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, m.Size, 10)
		buf = append(buf, '\n')
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	if unordered {
		return errUnordered
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the listing: %w", err)
	}
	end, err := l.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("writing the listing: %w", err)
	}
	l.end, l.sized = end, true
	return nil
}

// listingDigest is the first 63 bits of a SHA-256, so that it fits the
// signed 64-bit integers of a ledger.
func listingDigest(h hash.Hash) uint64 {
	return binary.BigEndian.Uint64(h.Sum(nil)) >> 1
}

// sharedUIDLs reads the UIDL section back for the UIDLs maybe says may be
// shared and keys the messages that really share one by content.
func (s *Source) sharedUIDLs(ctx context.Context, l *listing, maybe func(string) bool) error {
	byUID := map[string][]int{}
	r := bufio.NewReader(io.NewSectionReader(l.f, 0, l.listOff))
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the listing back: %w", err)
		}
		n, uid, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if maybe(uid) {
			num, _ := strconv.Atoi(n)
			byUID[uid] = append(byUID[uid], num)
		}
	}
	uids := make([]string, 0, len(byUID))
	for uid, nums := range byUID {
		if len(nums) > 1 {
			uids = append(uids, uid)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	sort.Strings(uids)
	s.special = map[int]string{}
	for _, uid := range uids {
		nums := byUID[uid]
		s.log.Warn("server reports the same UIDL for several messages: keying them by UIDL and content digest", "uidl", uid, "messages", len(nums))
		// The LIST section is not read yet: the size of a message the
		// server refuses to serve (its key then) is asked with LIST n.
		if err := s.keysFromDigest(ctx, nums, uid+"#", s.sizeAsked(ctx), s.special); err != nil {
			return err
		}
	}
	return nil
}

// each calls fn with every message of the listing in number order: the
// numbers both sections name, keyed by UIDL (or special's key).
func (l *listing) each(fn func(pipeline.SourceMessage) error, special map[int]string) error {
	uidls := bufio.NewReader(io.NewSectionReader(l.f, 0, l.listOff))
	sizes := bufio.NewReader(io.NewSectionReader(l.f, l.listOff, l.end-l.listOff))
	next := func(r *bufio.Reader) (int, string, error) {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			return 0, "", nil
		}
		if err != nil {
			return 0, "", fmt.Errorf("reading the listing back: %w", err)
		}
		n, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		num, err := strconv.Atoi(n)
		if err != nil || num <= 0 {
			return 0, "", fmt.Errorf("reading the listing back: bad line %q", shorten(line))
		}
		return num, rest, nil
	}
	un, uid, err := next(uidls)
	if err != nil {
		return err
	}
	ln, size, err := next(sizes)
	if err != nil {
		return err
	}
	for ln != 0 {
		switch {
		case un != 0 && un < ln:
			// A UIDL for a message LIST did not name (deleted between the
			// two by another session): not listed.
			if un, uid, err = next(uidls); err != nil {
				return err
			}
			continue
		case un == 0 || un > ln:
			// Every listed message needs a UIDL, or it would have no identity.
			return &ProtocolError{Command: "UIDL", Reason: fmt.Sprintf("no unique-id for message %d", ln)}
		}
		sz, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			return fmt.Errorf("reading the listing back: bad size %q", shorten(size))
		}
		key := uid
		if k, ok := special[ln]; ok {
			key = k
		}
		if err := fn(pipeline.SourceMessage{Key: key, Size: sz, Seq: uint32(ln)}); err != nil {
			return err
		}
		if un, uid, err = next(uidls); err != nil {
			return err
		}
		if ln, size, err = next(sizes); err != nil {
			return err
		}
	}
	return nil
}
