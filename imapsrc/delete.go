package imapsrc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// deleteBatch bounds the UIDs of one UID STORE / UID EXPUNGE.
const deleteBatch = 500

// Delete removes msgs from the server now, folder by folder: SELECT
// (read-write), UID STORE uids +FLAGS.SILENT (\Deleted), then UID EXPUNGE
// uids (RFC 4315 §2.1), which removes only those UIDs, never a message
// another client marked \Deleted; then the folder is EXAMINEd again. There is
// nothing to commit afterwards: Close(false) does not undo it.
//
// It refuses with ErrNoUIDPlus (fatal) before touching anything when the
// server has neither UIDPLUS nor IMAP4rev2, and skips a folder whose
// UIDVALIDITY is not its keys' (a UID would then name another message),
// returning ErrUIDValidityChanged for it after the other folders are done.
// All keys are checked before anything is deleted.
func (s *Source) Delete(ctx context.Context, msgs []pipeline.SourceMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	type folderKey struct {
		mailbox     string
		uidValidity uint32
	}
	byFolder := map[folderKey][]imap.UID{}
	for _, m := range msgs {
		mailbox, uv, uid, err := s.locate(m)
		if err != nil {
			return fmt.Errorf("deleting from %s at %s: %w", s.user, s.opts.Addr, err)
		}
		k := folderKey{mailbox, uv}
		byFolder[k] = append(byFolder[k], imap.UID(uid))
	}
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if caps := s.c.Caps(); !caps.Has(imap.CapUIDPlus) && !caps.Has(imap.CapIMAP4rev2) || s.opts.Quirks.Refused(imapconn.FeatureUIDExpunge) {
		return fatal(fmt.Errorf("deleting %d messages from %s at %s: %w", len(msgs), s.user, s.opts.Addr, ErrNoUIDPlus))
	}
	keys := make([]folderKey, 0, len(byFolder))
	for k := range byFolder {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b folderKey) int {
		return cmp.Or(cmp.Compare(a.mailbox, b.mailbox), cmp.Compare(a.uidValidity, b.uidValidity))
	})
	var skipped []error
	for _, k := range keys {
		err := s.deleteIn(ctx, k.mailbox, k.uidValidity, byFolder[k])
		if errors.Is(err, ErrUIDValidityChanged) {
			skipped = append(skipped, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("deleting from %s at %s: %w", s.user, s.opts.Addr, err)
		}
	}
	if len(skipped) > 0 {
		return transient(fmt.Errorf("deleting from %s at %s: %w", s.user, s.opts.Addr, errors.Join(skipped...)))
	}
	return nil
}

func (s *Source) deleteIn(ctx context.Context, mailbox string, uidValidity uint32, uids []imap.UID) error {
	sel, err := s.selectMailbox(ctx, mailbox, false)
	if err != nil {
		return err
	}
	if sel.uidValidity != uidValidity {
		return transient(fmt.Errorf("not deleting %d messages from %q: UIDVALIDITY is %d, the keys have %d: %w",
			len(uids), mailbox, sel.uidValidity, uidValidity, ErrUIDValidityChanged))
	}
	slices.Sort(uids)
	for batch := range slices.Chunk(slices.Compact(uids), deleteBatch) {
		set := imap.UIDSetNum(batch...)
		store := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
		if err := s.check(ctx, store.Close(), "UID STORE", mailbox); err != nil {
			return err
		}
		if err := s.c.UIDExpunge(set).Close(); imapconn.IsRefusal(err) {
			// Advertised and refused: as without UIDPLUS. \Deleted is
			// taken off again, so the source is as it was: the messages
			// stay there, the safe side.
			s.opts.Quirks.Refuse(imapconn.FeatureUIDExpunge, err, "messages are not deleted at this source")
			unmark := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
			if err := s.check(ctx, unmark.Close(), "UID STORE", mailbox); err != nil {
				return err
			}
			return fatal(fmt.Errorf("deleting %d messages from %q: %w", len(batch), mailbox, ErrNoUIDPlus))
		} else if err := s.check(ctx, err, "UID EXPUNGE", mailbox); err != nil {
			return err
		}
		s.log.Debug("deleted messages", "mailbox", mailbox, "messages", len(batch))
	}
	_, err = s.selectMailbox(ctx, mailbox, true)
	return err
}
