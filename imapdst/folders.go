package imapdst

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
)

// FolderList describes the destination's folders, for mapping.FolderOptions
// (DestDelim, DestPrefix, DestFolders).
type FolderList struct {
	// Folders are every folder LIST "" "*" returns, with their attributes:
	// RFC 6154 special-use attributes (\Sent, …) and, where the server
	// offers LIST-EXTENDED (RFC 5258), \Subscribed.
	Folders []mapping.Folder
	// Delim is the hierarchy separator of the personal namespace (RFC 2342),
	// else INBOX's; 0 when the server has no hierarchy.
	Delim rune
	// Prefix is the personal namespace prefix ("INBOX." on Courier and
	// Cyrus), "" when there is none or the server lacks NAMESPACE.
	Prefix string
	// SpecialUse and CreateSpecialUse say whether the server advertises
	// SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154 §5.1, §3).
	SpecialUse       bool
	CreateSpecialUse bool
	// Subscriptions says that the folders' attributes tell which are
	// subscribed (\Subscribed, LIST RETURN (SUBSCRIBED)): a folder without
	// it is not.
	Subscriptions bool
}

// Folders lists the destination's folders with their special-use
// attributes, its hierarchy separator and its personal namespace prefix.
// Servers with LIST-EXTENDED are asked for RETURN (SPECIAL-USE SUBSCRIBED)
// (RFC 6154 §5.1, RFC 5258 §3); others send special-use attributes in plain
// LIST replies when they have them (Dovecot does).
func (d *Destination) Folders(ctx context.Context) (FolderList, error) {
	return d.ctl.folders(ctx)
}

// EnsureMailboxUse is EnsureMailbox for a folder with a special use
// ("\Sent", …; "" for none). A missing folder is created with
// CREATE name (USE (use)) where the server advertises CREATE-SPECIAL-USE
// (RFC 6154 §3), and with a plain CREATE when it does not or refuses (e.g.
// NO [USEATTR] because another folder already has the use). When CREATE
// fails and the name has levels, the missing parents are created one by one
// and CREATE is tried again: RFC 3501 §6.3.3 only says servers SHOULD create
// them. An existing folder is left as it is.
func (d *Destination) EnsureMailboxUse(ctx context.Context, name, specialUse string) (pipeline.MailboxStatus, error) {
	if specialUse != "" && !validAtom(strings.TrimPrefix(specialUse, `\`)) {
		return pipeline.MailboxStatus{}, fatal(invalidArg("special use %q", specialUse))
	}
	return d.ctl.ensureMailbox(ctx, name, specialUse, false)
}

// CreatedMailboxes returns the mailboxes this session created (CREATE
// answered OK; not those that existed or that another connection created
// first), in the order it created them. It implements
// pipeline.MailboxCreator.
func (d *Destination) CreatedMailboxes() []string {
	d.ctl.createdMu.Lock()
	defer d.ctl.createdMu.Unlock()
	return slices.Clone(d.ctl.created)
}

var _ pipeline.MailboxCreator = (*Destination)(nil)

// Subscribe adds name to the user's subscriptions (RFC 3501 §6.3.6).
// Subscribing twice is not an error.
func (d *Destination) Subscribe(ctx context.Context, name string) error {
	done, err := d.ctl.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	return d.ctl.check(ctx, d.ctl.c.Subscribe(name).Wait(), "SUBSCRIBE", name)
}

func (ctl *control) folders(ctx context.Context) (FolderList, error) {
	done, err := ctl.begin(ctx)
	if err != nil {
		return FolderList{}, err
	}
	defer done()
	caps := ctl.c.Caps()
	fl := FolderList{SpecialUse: caps.Has(imap.CapSpecialUse), CreateSpecialUse: caps.Has(imap.CapCreateSpecialUse)}
	q := ctl.shared.Quirks
	// NAMESPACE and LIST go out together, answered in one round trip
	// (issue 18: on a distant server each reply waited for is 40 ms).
	var nsCmd *imapclient.NamespaceCommand
	if (caps.Has(imap.CapNamespace) || caps.Has(imap.CapIMAP4rev2)) && !q.Refused(imapconn.FeatureNamespace) {
		nsCmd = ctl.c.Namespace()
	}
	var lopts *imap.ListOptions
	if (caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2)) && !q.Refused(imapconn.FeatureListReturn) {
		lopts = &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: fl.SpecialUse}
	}
	listCmd := ctl.c.List("", "*", lopts)
	if nsCmd != nil {
		ns, err := nsCmd.Wait()
		switch {
		case imapconn.IsRefusal(err):
			q.Refuse(imapconn.FeatureNamespace, err, "no personal namespace prefix; the separator comes from LIST")
		case err != nil:
			_, _ = listCmd.Collect()
			return FolderList{}, ctl.check(ctx, err, "NAMESPACE", "")
		case len(ns.Personal) > 0:
			fl.Prefix, fl.Delim = ns.Personal[0].Prefix, ns.Personal[0].Delim
		}
	}
	list, err := listCmd.Collect()
	if lopts != nil && imapconn.IsRefusal(err) {
		q.Refuse(imapconn.FeatureListReturn, err, "a plain LIST, whose attributes the server may fill in anyway")
		list, err = ctl.c.List("", "*", nil).Collect()
	}
	if err = ctl.check(ctx, err, "LIST", "*"); err != nil {
		return FolderList{}, err
	}
	fl.Subscriptions = lopts != nil && !q.Refused(imapconn.FeatureListReturn)
	for _, l := range list {
		f := mapping.Folder{Name: l.Mailbox, Delim: l.Delim}
		for _, a := range l.Attrs {
			f.Attrs = append(f.Attrs, string(a))
		}
		if strings.EqualFold(f.Name, "INBOX") {
			f.Name = "INBOX"
			if fl.Delim == 0 {
				fl.Delim = l.Delim
			}
		}
		fl.Folders = append(fl.Folders, f)
		if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			ctl.shared.noteListed(f.Name)
		}
	}
	if fl.Delim == 0 {
		if fl.Delim, err = ctl.delimiter(ctx); err != nil {
			return FolderList{}, err
		}
	}
	ctl.shared.knowNamespace(fl.Prefix, fl.Delim)
	return fl, nil
}

// delimiter asks for the hierarchy separator with LIST "" "" (RFC 3501
// §6.3.8); 0 when the server has none.
func (ctl *control) delimiter(ctx context.Context) (rune, error) {
	list, err := ctl.c.List("", "", nil).Collect()
	if err = ctl.check(ctx, err, "LIST", ""); err != nil {
		return 0, err
	}
	for _, l := range list {
		if l.Delim != 0 {
			return l.Delim, nil
		}
	}
	return 0, nil
}

// create creates name, with specialUse when not "", creating missing
// parents when the server refuses (see EnsureMailboxUse).
func (ctl *control) create(ctx context.Context, name, specialUse string) error {
	err := ctl.createOnce(ctx, name, specialUse)
	var re *ReplyError
	if err == nil || !errors.As(err, &re) {
		return err
	}
	delim, derr := ctl.delimiter(ctx)
	if derr != nil {
		return derr
	}
	parents := ancestors(name, delim)
	if len(parents) == 0 {
		return err
	}
	for _, p := range parents {
		// A parent that exists (with or without [ALREADYEXISTS]) or cannot
		// be created shows up in the retry's reply.
		if perr := ctl.check(ctx, ctl.c.Create(p, nil).Wait(), "CREATE", p); perr != nil && !errors.As(perr, &re) {
			return perr
		} else if perr == nil {
			ctl.log.Info("created parent mailbox", "mailbox", p)
			ctl.noteCreated(p)
		}
	}
	return ctl.createOnce(ctx, name, specialUse)
}

// createOnce sends CREATE with USE when asked, offered and not refused
// before, else or after a refusal a plain CREATE. A reply that says the
// mailbox exists counts as success (imapconn.AlreadyExists): another
// connection created it meanwhile, or the server compares names without
// case and has it under another spelling. A BAD to CREATE … (USE …) means
// the server does not understand the syntax it advertised: it is given up
// for the server; a NO (e.g. [USEATTR], another folder has the use) only
// for this mailbox.
func (ctl *control) createOnce(ctx context.Context, name, specialUse string) error {
	q := ctl.shared.Quirks
	if specialUse != "" && ctl.c.Caps().Has(imap.CapCreateSpecialUse) && !q.Refused(imapconn.FeatureCreateUse) {
		opts := &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttr(specialUse)}}
		err := ctl.check(ctx, ctl.c.Create(name, opts).Wait(), "CREATE", name)
		var re *ReplyError
		switch {
		case err == nil:
			ctl.log.Info("created mailbox", "mailbox", name, "special_use", specialUse)
			ctl.noteCreated(name)
			return nil
		case errors.As(err, &re) && imapconn.AlreadyExists(re.Code, re.Text):
			return nil
		case !errors.As(err, &re):
			return err
		case re.Status == "BAD":
			q.Refuse(imapconn.FeatureCreateUse, err, "folders are created without their special use")
		default:
			ctl.log.Warn("server refused the special use; creating the mailbox without it",
				"mailbox", name, "special_use", specialUse, "reply", err)
		}
	}
	err := ctl.check(ctx, ctl.c.Create(name, nil).Wait(), "CREATE", name)
	var re *ReplyError
	switch {
	case err == nil:
		ctl.log.Info("created mailbox", "mailbox", name)
		ctl.noteCreated(name)
		ctl.shared.forget(name)
	case errors.As(err, &re) && imapconn.AlreadyExists(re.Code, re.Text):
		ctl.log.Info("CREATE says the mailbox exists", "mailbox", name, "reply", re.Status+" "+re.Text)
		err = nil
	}
	return err
}

// ancestors returns the proper ancestors of name, outermost first
// ("a/b/c" → "a", "a/b"); none when delim is 0.
func ancestors(name string, delim rune) []string {
	if delim == 0 {
		return nil
	}
	var out []string
	for i, r := range name {
		if r == delim && i > 0 && !slices.Contains(out, name[:i]) {
			out = append(out, name[:i])
		}
	}
	return out
}

// validAtom reports whether s is a non-empty RFC 3501 §9 atom.
func validAtom(s string) bool {
	return s != "" && mapping.ValidKeyword(s)
}
