package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/pipeline"
)

// Fetch writes the exact bytes of the message msg.Key names (RFC 3501
// §6.4.5 BODY.PEEK[], which leaves \Seen alone) to w and returns how many
// it wrote. An IMAP key alone decides: msg need not come from this
// session's List; a Gmail key (GmailKey) must, since its message is read
// where that List found it (msg.Seq).
//
// After Prefetch, messages are asked for in batches: see Prefetch.
//
// The body streams from the connection into w; it is never held in memory.
// On any error, what was written to w is not the message and must be
// discarded: a body shorter than its announced literal size, a FETCH that
// does not complete with OK, or a reply carrying another UID are all
// errors, never a short message with a nil error.
//
// Errors: ErrBadKey and ErrMessageGone (per message); ErrUIDValidityChanged
// when the folder's UIDVALIDITY is not the key's (transient: the engine
// lists again and gets the current keys); a NO to the FETCH (per message);
// transport failures, BYE and responses go-imap cannot parse (transient,
// and the session is unusable afterwards).
func (s *Source) Fetch(ctx context.Context, msg pipeline.SourceMessage, w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mailbox, uidValidity, uid, err := s.locate(msg)
	if err != nil {
		return 0, err
	}
	done, err := s.beginFetch(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	where := func(n int64, err error) (int64, error) {
		return n, fmt.Errorf("fetching UID %d of %q for %s at %s: %w", uid, mailbox, s.user, s.opts.Addr, err)
	}
	if s.binaryNext[msg.Key] {
		delete(s.binaryNext, msg.Key)
		n, err := s.fetchAsBinary(ctx, mailbox, uidValidity, imap.UID(uid), w)
		if err != nil {
			return where(n, err)
		}
		return n, nil
	}
	s.watching, s.suspect = s.c.Caps().Has(imap.CapBinary), false
	n, err := s.fetchPlanned(ctx, msg.Key, mailbox, uidValidity, imap.UID(uid), w)
	s.watching = false
	if err != nil {
		return where(n, err)
	}
	if s.suspect {
		binary, err := s.checkBinary(ctx, mailbox, uidValidity, imap.UID(uid), n)
		if err != nil {
			return where(n, err)
		}
		if binary {
			if s.binaryNext == nil {
				s.binaryNext = map[string]bool{}
			}
			s.binaryNext[msg.Key] = true
			return where(n, fmt.Errorf("the server serves its NUL bytes replaced in BODY[] and exactly in BINARY[]: %w", pipeline.ErrFetchAgain))
		}
	}
	return n, nil
}

func (s *Source) fetch(ctx context.Context, mailbox string, uidValidity uint32, uid imap.UID, w io.Writer) (int64, error) {
	sel, err := s.selectMailbox(ctx, mailbox, true)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
		return 0, perMessage(fmt.Errorf("folder %q is gone: %w", mailbox, ErrMessageGone))
	}
	if err != nil {
		return 0, err
	}
	if sel.uidValidity != uidValidity {
		return 0, transient(fmt.Errorf("UIDVALIDITY of %q is %d, the key has %d: %w", mailbox, sel.uidValidity, uidValidity, ErrUIDValidityChanged))
	}
	var uidErr error
	if !s.seqFetch {
		n, got, err := s.fetchBody(ctx, mailbox, imap.UIDSetNum(uid), uid, w)
		if got || err != nil && !errors.As(err, &ie) {
			return n, err
		}
		uidErr = err // a NO, or no message at all
	}
	// Nothing came back for the UID: the message is gone, or the server
	// sent its UID after the body, a response go-imap beta.8 drops for a
	// UID FETCH (it dispatches a reply by the UID seen before the first
	// literal, and finds none). SEARCH tells which; the body is then
	// fetched by sequence number, which go-imap dispatches without the UID.
	// No EXPUNGE may arrive between SEARCH and FETCH (RFC 3501 §7.4.1), so
	// the number still names the message; the UID in the reply confirms it.
	data, err := s.c.Search(&imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(uid)}}, nil).Wait()
	if err = s.check(ctx, err, "SEARCH", mailbox); err != nil {
		return 0, err
	}
	seqs := data.AllSeqNums()
	if len(seqs) == 0 {
		return 0, perMessage(fmt.Errorf("UID %d not in %q: %w", uid, mailbox, ErrMessageGone))
	}
	if uidErr != nil {
		return 0, uidErr // the server refused a message it has
	}
	if !s.seqFetch {
		s.log.Warn("server sends UID after the message body; fetching bodies by sequence number from now on", "mailbox", mailbox)
		s.seqFetch = true
	}
	n, got, err := s.fetchBody(ctx, mailbox, imap.SeqSetNum(seqs[0]), uid, w)
	if err == nil && !got {
		err = s.broken(ctx, fmt.Errorf("imapsrc: FETCH %d (UID %d) in %q on %s returned no message", seqs[0], uid, mailbox, s.opts.Addr))
	}
	return n, err
}

// fetchBody sends FETCH or UID FETCH set (UID BODY.PEEK[]) for the one
// message uid and copies its body to w. got reports whether a body came
// back (and was written to w, completely if err is nil).
func (s *Source) fetchBody(ctx context.Context, mailbox string, set imap.NumSet, uid imap.UID, w io.Writer) (n int64, got bool, err error) {
	command := "FETCH"
	if _, ok := set.(imap.UIDSet); ok {
		command = "UID FETCH"
	}
	s.tap.note(fmt.Sprintf("C: %s %v (UID BODY.PEEK[]) [the reply's body is not traced]", command, set))
	s.tap.trace(false)
	defer s.tap.trace(true)
	cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var (
		gotUID imap.UID
		bad    error // the reply is wrong; the connection may be fine
		werr   error // w failed
	)
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				gotUID = it.UID
			case imapclient.FetchItemDataBodySection:
				w2, r2, b := s.takeBody(w, it, &got, &n)
				if r2 != nil {
					// The connection failed mid-body: abandon the command
					// unread (see takeBody).
					return n, got, s.check(ctx, r2, command, mailbox)
				}
				werr, bad = first(werr, w2), first(bad, b)
			}
		}
	}
	if err := s.check(ctx, cmd.Close(), command, mailbox); err != nil {
		return n, got, err
	}
	switch {
	case werr != nil:
		return n, got, fmt.Errorf("writing the message: %w", werr)
	case bad != nil:
		return n, got, fmt.Errorf("imapsrc: %s %v in %q on %s: %w", command, set, mailbox, s.opts.Addr, bad)
	case got && gotUID != uid:
		return n, got, s.broken(ctx, fmt.Errorf("imapsrc: %s %v in %q on %s: asked for UID %d, the reply has UID %d", command, set, mailbox, s.opts.Addr, uid, gotUID))
	}
	return n, got, nil
}

// takeBody copies a reply's BODY[] item to w. Only the first counts (got
// says whether one came already); a second one, or NIL, is the reply's
// fault and comes back as bad, with nothing copied.
// *n is set to the bytes copied when the item is taken.
//
// After a readErr the caller abandons the command: neither the message's
// nor the command's Next nor Close may run, and the session is marked
// broken (check closes the client). go-imap beta.8's literal reader hands
// the decoder back to the client's reader goroutine on its first error
// (fetchLiteralReader closes its channel), yet stays readable: Next and
// Close discard the rest of the previous item by reading that literal
// again, from the bufio.Reader the resumed goroutine now reads (a data race
// the race detector reports, and garbage parsed on both sides). Nothing is
// lost by not draining: the connection is broken, and its error is the one
// returned.
func (s *Source) takeBody(w io.Writer, it imapclient.FetchItemDataBodySection, got *bool, n *int64) (werr, readErr, bad error) {
	switch {
	case *got:
		return nil, nil, fmt.Errorf("server sent the body twice")
	case it.Literal == nil:
		return nil, nil, perMessage(fmt.Errorf("server sent the body as NIL"))
	}
	*got = true
	*n, werr, readErr = s.copyBody(w, it.Literal)
	return werr, readErr, nil
}

// copyBody copies a body literal to w. It tells w's error (werr: the
// caller's sink failed) apart from a read error (the connection failed),
// and reports a body shorter than announced as a read error: go-imap beta.8
// ends a literal cut by a dropped connection with io.EOF, as if it were
// complete.
// The copy buffer is the session's (io.Copy allocated 32 KB per message:
// most of the IMAP source's allocations on small mail). A w that reads for
// itself (io.ReaderFrom: the spool, which reads into its own buffer and
// so saves a copy of every byte and most read system calls) is given the
// literal instead.
func (s *Source) copyBody(w io.Writer, lit imap.LiteralReader) (n int64, werr, readErr error) {
	var r io.Reader = lit
	if s.watching {
		wr := &s.watch80
		wr.Reset(lit)
		r = wr
		defer func() { s.suspect = s.suspect || wr.Suspect() }()
	}
	if rf, ok := w.(io.ReaderFrom); ok {
		er := &s.errRead
		*er = errReader{r: r}
		n, err := rf.ReadFrom(er)
		switch {
		case er.err != nil && er.err != io.EOF:
			return n, nil, er.err
		case err != nil:
			return n, err, nil
		case n != lit.Size():
			return n, nil, fmt.Errorf("body ended after %d of %d bytes", n, lit.Size())
		}
		return n, nil, nil
	}
	ew := &errWriter{w: w}
	if s.copyBuf == nil {
		s.copyBuf = make([]byte, 32<<10)
	}
	n, readErr = io.CopyBuffer(ew, r, s.copyBuf)
	switch {
	case ew.err != nil:
		return n, ew.err, nil
	case readErr == nil && n != lit.Size():
		return n, nil, fmt.Errorf("body ended after %d of %d bytes", n, lit.Size())
	}
	return n, nil, readErr
}

// errReader remembers r's error (io.EOF included) so that it is told apart
// from the writer's in ReadFrom.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// errWriter remembers w's error so that it is told apart from a read error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
