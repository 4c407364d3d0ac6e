package imapconn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/testkit/imapfake"
)

// countingConn counts the reads of the server's conn.
type countingConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// TestFetchRepliesShareReads: the FETCH replies of small messages are read
// from the server's conn several at a time, and go-imap still gets every
// body's exact bytes. Through go-imap's own 4 KB buffer alone a reply
// cost one read or two (a fill for its first line and the literal's
// start, then the rest of the literal): 88 reads for these 60.
func TestFetchRepliesShareReads(t *testing.T) {
	const messages = 60
	var replies strings.Builder
	bodies := make([][]byte, messages)
	for i := range bodies {
		// 3–9 KB, bare CR and LF included: the bytes must come out as sent.
		line := fmt.Sprintf("Subject: message %d\r\n\r\nline\rbare CR\nbare LF\r\n", i+1)
		bodies[i] = bytes.Repeat([]byte(line), (3000+100*i)/len(line))
		fmt.Fprintf(&replies, "* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", i+1, i+1, len(bodies[i]), bodies[i])
	}
	replies.WriteString("T2 OK done\r\n")
	srv := imapfake.Start(t, append(loggedIn(),
		imapfake.Expect(fmt.Sprintf("T2 UID FETCH 1:%d (UID BODY.PEEK[])\r\n", messages)),
		imapfake.Send(replies.String()),
		imapfake.Drain())...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	raw, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: raw}
	c, err := connect(ctx, idleconn.New(counted, 5*time.Second), plainOptions(srv.Addr()))
	if err != nil {
		_ = raw.Close()
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	before := counted.reads.Load()
	cmd := c.Client().Fetch(imap.UIDSet{{Start: 1, Stop: messages}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	got := 0
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok {
				continue
			}
			b, err := io.ReadAll(body.Literal)
			if err != nil {
				t.Fatalf("reading body %d: %v", got+1, err)
			}
			if got >= messages || !bytes.Equal(b, bodies[got]) {
				t.Fatalf("body %d: %d bytes, not the %dth message's exact bytes", got+1, len(b), got+1)
			}
			got++
		}
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if got != messages {
		t.Fatalf("got %d bodies, want %d", got, messages)
	}
	// One reply is 3–9 KB: about 5 reads for all of them with a 64 KB
	// buffer; a server's bytes may arrive in more pieces than it wrote, so
	// allow several times that, and still well under one read per message.
	reads := counted.reads.Load() - before
	t.Logf("%d reads of the conn for %d FETCH replies", reads, messages)
	if reads > messages/2 {
		t.Errorf("%d reads of the conn for %d FETCH replies, want at most %d", reads, messages, messages/2)
	}
}
