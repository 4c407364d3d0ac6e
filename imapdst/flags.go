package imapdst

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
)

// maxStoreUIDs bounds the UIDs of one UID STORE, keeping command lines short
// (RFC 7162 §4 asks clients to keep them under 8,000 octets).
const maxStoreUIDs = 500

// StoreResult tells what StoreFlagsCounted did.
type StoreResult struct {
	// Stored counts the messages whose flags were set. UID STORE says
	// nothing about UIDs that are gone, so they are counted too.
	Stored int
	// Failed counts the messages whose UID STORE the server refused.
	Failed int
	// Commands counts the UID STORE commands sent: one per distinct flag
	// set and maxStoreUIDs messages.
	Commands int
	// Dropped counts, per flag, the messages it was left out for: \Recent,
	// flags that are not atoms, and flags the mailbox's PERMANENTFLAGS do
	// not allow (keywords are allowed by \*). Nil when none were.
	Dropped map[string]int
}

// PermanentFlags returns the flags the client can change permanently in
// mailbox, from the PERMANENTFLAGS response code of SELECT (RFC 3501
// §7.1): `\*` among them means new keywords may be created. The result is
// nil when the server sends no PERMANENTFLAGS, which RFC 3501 says means
// every flag can be set, or will not SELECT the mailbox yet. SELECT, not
// EXAMINE: read-only, servers (Dovecot) report that no flag is permanent.
// The mailbox is left at once (see control.deselect), and what it says is
// remembered for every session of the account (Options.Shared).
func (d *Destination) PermanentFlags(ctx context.Context, mailbox string) ([]string, error) {
	if d.ctl.err != nil {
		return nil, d.ctl.err
	}
	return d.ctl.shared.permanentFlags(ctx, d.ctl, mailbox)
}

var (
	_ pipeline.FlagStorer       = (*Destination)(nil)
	_ pipeline.PermanentFlagser = (*Destination)(nil)
)

// StoreFlags is StoreFlagsCounted without the counts.
func (d *Destination) StoreFlags(ctx context.Context, mailbox string, uidValidity uint32, flags map[uint32][]string) error {
	_, err := d.StoreFlagsCounted(ctx, mailbox, uidValidity, flags)
	return err
}

// StoreFlagsCounted sets the exact flags of messages already in mailbox: flags maps
// a destination UID to the flags it must have, replacing what it has
// (UID STORE uid FLAGS.SILENT (…), RFC 3501 §6.4.6). Each flag set is first
// cleaned with mapping.CleanFlags against the mailbox's PERMANENTFLAGS;
// what is dropped is counted, never fatal. Messages with the same flags
// share one command. The caller decides about \Deleted: it is set when
// asked for.
//
// The mailbox is selected read-write and left at the end (see
// control.deselect). When its UIDVALIDITY is not
// uidValidity nothing is stored and the error wraps
// pipeline.ErrUIDValidityChanged. Once SELECT has answered, every UID STORE
// and the command that leaves the mailbox go out together (RFC 3501 §5.5):
// two round trips for the folder, however many flag sets it has. A
// server's refusal of one command is recorded in Failed and returned,
// after the other commands ran, as a per-message error wrapping the
// *ReplyError; a broken connection, or a NO saying to try again later,
// is returned once the replies sent have been read.
func (d *Destination) StoreFlagsCounted(ctx context.Context, mailbox string, uidValidity uint32, flags map[uint32][]string) (res StoreResult, err error) {
	if len(flags) == 0 {
		return res, nil
	}
	done, err := d.ctl.begin(ctx)
	if err != nil {
		return res, err
	}
	defer done()
	ctl := d.ctl
	sel, err := ctl.selectRW(ctx, mailbox)
	if err != nil {
		return res, err
	}
	leave := func() error { return ctl.leave(ctx, mailbox) }
	defer func() { err = cmp(err, leave()) }()
	if sel.UIDValidity != uidValidity {
		return res, fmt.Errorf("imapdst: storing flags in %q: UIDVALIDITY is %d, expected %d: %w",
			mailbox, sel.UIDValidity, uidValidity, pipeline.ErrUIDValidityChanged)
	}
	permanent := flagStrings(sel.PermanentFlags)

	type group struct {
		flags []imap.Flag
		uids  []imap.UID
	}
	groups := map[string]*group{}
	// In UID order, so that a group's spelling (from its first message) and
	// so the commands sent do not depend on map order.
	uids := make([]uint32, 0, len(flags))
	for uid := range flags {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		fs := flags[uid]
		if uid == 0 {
			return res, fatal(invalidArg("UID 0 in %q", mailbox))
		}
		kept, dropped := mapping.CleanFlags(fs, permanent)
		for _, f := range dropped {
			if res.Dropped == nil {
				res.Dropped = map[string]int{}
			}
			res.Dropped[f]++
		}
		key := flagKey(kept)
		g := groups[key]
		if g == nil {
			g = &group{}
			for _, f := range kept {
				g.flags = append(g.flags, imap.Flag(f))
			}
			groups[key] = g
		}
		g.uids = append(g.uids, imap.UID(uid))
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	type sent struct {
		cmd  *imapclient.FetchCommand
		key  string
		uids int
	}
	var stores []sent
	for _, k := range keys {
		g := groups[k]
		slices.Sort(g.uids)
		for chunk := range slices.Chunk(g.uids, maxStoreUIDs) {
			store := &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: g.flags}
			stores = append(stores, sent{ctl.c.Store(imap.UIDSetNum(chunk...), store, nil), k, len(chunk)})
			res.Commands++
		}
	}
	waitLeave := ctl.startDeselect(ctx, mailbox)
	leave = func() error {
		if err := waitLeave(); ctl.err == nil {
			return err
		}
		return nil // broken meanwhile: the error that broke it is returned
	}
	var refused []error
	var stop error
	for _, st := range stores {
		err := ctl.check(ctx, st.cmd.Close(), "UID STORE", mailbox)
		var re *ReplyError
		switch {
		case err == nil:
			res.Stored += st.uids
		case errors.As(err, &re) && re.ErrorClass() != pipeline.ClassTransient:
			res.Failed += st.uids
			refused = append(refused, fmt.Errorf("setting flags (%s) on %d messages: %w", st.key, st.uids, err))
		default:
			stop = cmp(stop, err)
		}
	}
	if stop != nil {
		return res, stop
	}
	if len(refused) > 0 {
		return res, perMessage(errors.Join(refused...))
	}
	return res, nil
}

// selectRW opens mailbox read-write (RFC 3501 §6.3.1).
func (ctl *control) selectRW(ctx context.Context, mailbox string) (*imap.SelectData, error) {
	data, err := ctl.c.Select(mailbox, nil).Wait()
	return data, ctl.check(ctx, err, "SELECT", mailbox)
}

// flagStrings converts go-imap flags; nil stays nil.
func flagStrings(fs []imap.Flag) []string {
	if fs == nil {
		return nil
	}
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

// flagKey is a canonical spelling of a cleaned flag set: sorted, system
// flags canonical (CleanFlags), keywords compared without case
// (mapping.SameFlags).
func flagKey(flags []string) string {
	k := make([]string, len(flags))
	for i, f := range flags {
		k[i] = mapping.FlagKey(f)
	}
	slices.Sort(k)
	return strings.Join(k, " ")
}
