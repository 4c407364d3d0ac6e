package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// A server with BINARY (RFC 3516) may hold a message with NUL bytes (one
// appended as a literal8) and serve it in BODY[] with each NUL replaced:
// Dovecot serves 0x80. Read so, the copy would not be the message. Such a
// message is read as imapdst's Digest reads it: when BODY[] holds a 0x80
// byte that is no part of a UTF-8 character (imapconn.Suspect80), the message is
// read again as BINARY.PEEK[], and when that has the same size and holds
// a NUL byte, it is the message's bytes. Fetch then returns
// pipeline.ErrFetchAgain, and the next Fetch of the message writes
// BINARY[]. A message whose 0x80 bytes are its own (Windows-1252's euro
// sign) costs one more read; UTF-8 text costs nothing.

// fetchBinary sends UID FETCH uid (UID BINARY.PEEK[]) in the selected
// mailbox and copies the body to w. It returns the bytes written and
// whether they hold a NUL byte.
func (s *Source) fetchBinary(ctx context.Context, mailbox string, uid imap.UID, w io.Writer) (int64, bool, error) {
	s.tap.note(fmt.Sprintf("C: UID FETCH %d (UID BINARY.PEEK[]) [the reply's body is not traced]", uid))
	s.tap.trace(false)
	defer s.tap.trace(true)
	cmd := s.c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}})
	var (
		n      int64
		got    bool
		gotUID imap.UID
		bad    error
		werr   error
	)
	nw := &imapconn.NULWriter{W: w}
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				gotUID = it.UID
			case imapclient.FetchItemDataBinarySection:
				switch {
				case got:
					bad = first(bad, errors.New("server sent BINARY[] twice"))
					continue
				case it.Literal == nil:
					bad = first(bad, errors.New("server sent BINARY[] as NIL"))
					continue
				}
				got = true
				var rerr error
				n, werr, rerr = s.copyBody(nw, it.Literal)
				if rerr != nil {
					return n, false, s.check(ctx, rerr, "UID FETCH", mailbox)
				}
			}
		}
	}
	if err := s.check(ctx, cmd.Close(), "UID FETCH", mailbox); err != nil {
		return n, false, err
	}
	switch {
	case werr != nil:
		return n, false, fmt.Errorf("writing the message: %w", werr)
	case bad != nil:
		return n, false, perMessage(fmt.Errorf("imapsrc: UID FETCH %d (BINARY.PEEK[]) in %q on %s: %w", uid, mailbox, s.opts.Addr, bad))
	case !got || gotUID != uid:
		return n, false, perMessage(fmt.Errorf("imapsrc: UID FETCH %d (BINARY.PEEK[]) in %q on %s returned UID %d, body %v", uid, mailbox, s.opts.Addr, gotUID, got))
	}
	return n, nw.NUL, nil
}

// checkBinary is called after BODY[] of uid in mailbox (size bytes) showed
// a suspect 0x80 (see above). It ends any batch, reads BINARY.PEEK[] and
// reports whether that is the message's bytes: the same size, with a NUL.
func (s *Source) checkBinary(ctx context.Context, mailbox string, uidValidity uint32, uid imap.UID, size int64) (bool, error) {
	if err := s.selectAlone(ctx, mailbox, uidValidity); err != nil {
		return false, err
	}
	n, nul, err := s.fetchBinary(ctx, mailbox, uid, io.Discard)
	if err != nil {
		return false, err
	}
	return nul && n == size, nil
}

// fetchAsBinary writes BINARY.PEEK[] of uid in mailbox to w: a message
// checkBinary found served with its NUL bytes replaced in BODY[].
func (s *Source) fetchAsBinary(ctx context.Context, mailbox string, uidValidity uint32, uid imap.UID, w io.Writer) (int64, error) {
	if err := s.selectAlone(ctx, mailbox, uidValidity); err != nil {
		return 0, err
	}
	n, nul, err := s.fetchBinary(ctx, mailbox, uid, w)
	if err == nil && !nul {
		// It changed under us: the next Fetch reads BODY[] again.
		return n, fmt.Errorf("UID %d of %q no longer holds a NUL byte in BINARY[]: %w", uid, mailbox, pipeline.ErrFetchAgain)
	}
	return n, err
}

// selectAlone ends any batch in flight and selects mailbox, which must
// still have uidValidity, for a command of its own.
func (s *Source) selectAlone(ctx context.Context, mailbox string, uidValidity uint32) error {
	if err := s.endBatch(ctx); err != nil {
		return err
	}
	sel, err := s.selectMailbox(ctx, mailbox, true)
	if err != nil {
		return err
	}
	if sel.uidValidity != uidValidity {
		return transient(fmt.Errorf("UIDVALIDITY of %q is %d, the key has %d: %w", mailbox, sel.uidValidity, uidValidity, ErrUIDValidityChanged))
	}
	return nil
}
