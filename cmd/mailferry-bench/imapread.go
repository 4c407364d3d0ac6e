package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/secret"
)

// imapSession is a logged-in go-imap client with INBOX EXAMINEd, for the
// IMAP read ceilings, and the UIDs of INBOX.
func imapSession(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (*imapclient.Client, []imap.UID, error) {
	conn, err := dialClient(ctx, addr, tlsCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("dialling IMAP %s: %w", addr, err)
	}
	c := imapclient.New(conn, nil)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := c.Login(user, pw.Reveal()).Wait(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("logging in to IMAP %s as %s: %w", addr, user, err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("EXAMINE INBOX on %s: %w", addr, err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("UID SEARCH ALL on %s: %w", addr, err)
	}
	return c, data.AllUIDs(), nil
}

// readIMAP is the plain IMAP read ceiling: go-imap's client reads every
// message of INBOX with one UID FETCH (BODY.PEEK[]) per message, waiting
// for each, into io.Discard.
func readIMAP(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (transfer, error) {
	start := time.Now()
	c, uids, err := imapSession(ctx, addr, tlsCfg, user, pw)
	if err != nil {
		return transfer{}, err
	}
	defer c.Close()
	var t transfer
	for _, uid := range uids {
		n, err := fetchBodies(c, imap.UIDSetNum(uid))
		if err != nil {
			return t, fmt.Errorf("UID FETCH %d on %s: %w", uid, addr, err)
		}
		t.messages += n.messages
		t.bytes += n.bytes
	}
	c.Logout().Wait()
	t.elapsed = time.Since(start)
	return t, nil
}

// readIMAPBatched is the batched IMAP read ceiling: one UID FETCH 1:*
// (BODY.PEEK[]) for the whole of INBOX, every body streamed into
// io.Discard as it arrives; no round trip is waited for but the one.
func readIMAPBatched(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (transfer, error) {
	start := time.Now()
	c, _, err := imapSession(ctx, addr, tlsCfg, user, pw)
	if err != nil {
		return transfer{}, err
	}
	defer c.Close()
	var all imap.UIDSet
	all.AddRange(1, 0) // 1:*
	t, err := fetchBodies(c, all)
	if err != nil {
		return t, fmt.Errorf("UID FETCH 1:* on %s: %w", addr, err)
	}
	c.Logout().Wait()
	t.elapsed = time.Since(start)
	return t, nil
}

// fetchBodies sends UID FETCH set (BODY.PEEK[]) and discards the bodies,
// checking each against its announced size.
func fetchBodies(c *imapclient.Client, set imap.UIDSet) (transfer, error) {
	cmd := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var t transfer
	var bad error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok || body.Literal == nil {
				continue
			}
			n, err := io.Copy(io.Discard, body.Literal)
			if err == nil && n != body.Literal.Size() {
				err = fmt.Errorf("body of message %d ended after %d of %d bytes", msg.SeqNum, n, body.Literal.Size())
			}
			if err != nil && bad == nil {
				bad = err
			}
			t.messages++
			t.bytes += n
		}
	}
	return t, errors.Join(bad, cmd.Close())
}
