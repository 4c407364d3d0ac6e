package mailserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapTimeout bounds one seeding or inspection conversation, so a wedged
// server fails a test instead of hanging it.
const imapTimeout = 60 * time.Second

// Account is a login on an IMAP listener, for seeding and inspecting
// mailboxes through the server itself.
type Account struct {
	Addr     string
	User     string
	Password string
	// TLS, when set, upgrades the plain connection with STARTTLS first.
	// Kits seed over plain IMAP on loopback.
	TLS *tls.Config
}

// Message is one message as the server serves it.
type Message struct {
	UID          uint32
	Flags        []string // sorted; system flags with their backslash
	InternalDate time.Time
	Body         []byte // BODY.PEEK[], as served
}

// Mailbox is one LIST answer.
type Mailbox struct {
	Name  string // UTF-8 (go-imap decodes modified UTF-7)
	Delim rune   // 0 for NIL
	Attrs []string
}

// Dial connects and logs in. The caller closes the client.
func (a Account) Dial(ctx context.Context) (*imapclient.Client, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", a.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailserver: connecting to %s: %w", a.Addr, err)
	}
	deadline := time.Now().Add(imapTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	var c *imapclient.Client
	if a.TLS != nil {
		c, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: a.TLS})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("mailserver: STARTTLS on %s: %w", a.Addr, err)
		}
	} else {
		c = imapclient.New(conn, nil)
	}
	if err := c.Login(a.User, a.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("mailserver: logging in to %s as %s: %w", a.Addr, a.User, err)
	}
	return c, nil
}

func (a Account) session(ctx context.Context, f func(*imapclient.Client) error) error {
	c, err := a.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := f(c); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// Append stores msg in mailbox with flags and internalDate (the zero time
// lets the server choose). A mailbox other than INBOX that LIST does not
// show is created first; an INBOX the server answers TRYCREATE for (an
// mbox INBOX that never received mail) is SELECTed, which creates it, and
// the APPEND is tried once more. Servers without LITERAL+ may drop the
// connection after refusing a synchronizing literal, so the retry uses a
// new one.
func (a Account) Append(ctx context.Context, mailbox string, msg []byte, flags []string, internalDate time.Time) error {
	isInbox := strings.EqualFold(mailbox, "INBOX")
	if !isInbox {
		if err := a.Create(ctx, mailbox); err != nil {
			return err
		}
	}
	err := a.session(ctx, func(c *imapclient.Client) error {
		return appendOne(c, mailbox, msg, flags, internalDate)
	})
	if err != nil && isInbox && IsTryCreate(err) {
		err = a.session(ctx, func(c *imapclient.Client) error {
			if _, err := c.Select(mailbox, nil).Wait(); err != nil {
				return fmt.Errorf("selecting it after TRYCREATE: %w", err)
			}
			return appendOne(c, mailbox, msg, flags, internalDate)
		})
	}
	if err != nil {
		return fmt.Errorf("mailserver: appending to %q for %s on %s: %w", mailbox, a.User, a.Addr, err)
	}
	return nil
}

func appendOne(c *imapclient.Client, mailbox string, msg []byte, flags []string, date time.Time) error {
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	cmd := c.Append(mailbox, int64(len(msg)), opts)
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

// Create creates mailbox; it succeeds when the mailbox already exists.
func (a Account) Create(ctx context.Context, mailbox string) error {
	return a.session(ctx, func(c *imapclient.Client) error {
		list, err := c.List("", mailbox, nil).Collect()
		if err == nil && len(list) > 0 {
			return nil
		}
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			return fmt.Errorf("mailserver: creating %q for %s on %s: %w", mailbox, a.User, a.Addr, err)
		}
		return nil
	})
}

// Messages returns what mailbox holds, in UID order, without changing its
// flags.
func (a Account) Messages(ctx context.Context, mailbox string) ([]Message, error) {
	var out []Message
	err := a.session(ctx, func(c *imapclient.Client) error {
		var err error
		out, err = a.fetchAll(c, mailbox)
		return err
	})
	return out, err
}

// Mailboxes lists every mailbox of the account, sorted by name.
func (a Account) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	var out []Mailbox
	err := a.session(ctx, func(c *imapclient.Client) error {
		list, err := c.List("", "*", nil).Collect()
		if err != nil {
			return fmt.Errorf("mailserver: listing mailboxes of %s on %s: %w", a.User, a.Addr, err)
		}
		for _, l := range list {
			m := Mailbox{Name: l.Mailbox, Delim: l.Delim}
			for _, at := range l.Attrs {
				m.Attrs = append(m.Attrs, string(at))
			}
			out = append(out, m)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return nil
	})
	return out, err
}

// fetchAll selects mailbox read-only and fetches every message.
func (a Account) fetchAll(c *imapclient.Client, mailbox string) ([]Message, error) {
	data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("mailserver: selecting %q for %s: %w", mailbox, a.User, err)
	}
	if data.NumMessages == 0 {
		return nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("mailserver: fetching %q for %s: %w", mailbox, a.User, err)
	}
	var out []Message
	for _, b := range bufs {
		m := Message{UID: uint32(b.UID), InternalDate: b.InternalDate, Body: b.FindBodySection(section)}
		for _, f := range b.Flags {
			m.Flags = append(m.Flags, string(f))
		}
		sort.Strings(m.Flags)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

// IsTryCreate reports whether err is a NO [TRYCREATE] reply, also in the
// form Mailutils sends, with the code after the command name ("NO APPEND
// [TRYCREATE] failed"), which go-imap leaves in the text.
func IsTryCreate(err error) bool {
	var ierr *imap.Error
	if !errors.As(err, &ierr) {
		return false
	}
	return ierr.Code == imap.ResponseCodeTryCreate || strings.Contains(ierr.Text, "[TRYCREATE]")
}
