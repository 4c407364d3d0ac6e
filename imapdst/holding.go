package imapdst

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/pipeline"
)

// Holding tells which of uids mailbox holds (not marked \Deleted),
// provided it still has uidValidity (else an error wrapping
// pipeline.ErrUIDValidityChanged), without reading a byte of them: one
// EXAMINE and one UID SEARCH (pipeline.Holder). Destination matching asks
// it after recording the copies it found, whose digests it read already.
func (d *Destination) Holding(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) (map[uint32]bool, error) {
	return d.ctl.holding(ctx, mailbox, uidValidity, uids)
}

var _ pipeline.Holder = (*Destination)(nil)

func (ctl *control) holding(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	if len(uids) == 0 {
		return out, nil
	}
	done, err := ctl.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	sel, err := ctl.examineUnder(ctx, mailbox, uidValidity, "looking for copies in")
	if err != nil || sel.NumMessages == 0 {
		return out, err
	}
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	data, err := ctl.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}, NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err = ctl.check(ctx, err, "UID SEARCH", mailbox); err != nil {
		return nil, err
	}
	for _, u := range data.AllUIDs() {
		out[uint32(u)] = true
	}
	return out, nil
}
