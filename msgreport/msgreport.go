// Package msgreport writes the per-message report of a migration: one row
// per message the ledger knows, with where it came from, where it went,
// its size, what happened to it and why, as CSV or JSON. Rows are written
// as the ledger's cursor yields them, so a report of millions of messages
// takes no more memory than one of ten.
package msgreport

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
)

// State is what happened to a message, as the report spells it.
type State string

// States of a message in the report.
const (
	Copied  State = "copied"  // on the destination, confirmed and recorded
	Skipped State = "skipped" // not copied, for a reason that does not change by itself
	Failed  State = "failed"  // not copied yet; the next run tries again
	Pending State = "pending" // sent by a run that was interrupted; the next run settles it
	// DeletedAtSource: copied, then deleted at the source (by mailferry
	// or anyone); the copy stays.
	DeletedAtSource State = "deleted_at_source"
	// RemovedFromDestination: copied, deleted at the source, and its copy
	// removed by a mirror pass (docs/mirror.md); BeingRemoved and
	// BeingMoved: a mirror pass recorded the removal or the move of the
	// copy and was interrupted before the server confirmed it (the next
	// run settles it).
	RemovedFromDestination State = "removed_from_destination"
	BeingRemoved           State = "being_removed"
	BeingMoved             State = "being_moved"
)

// Row is one message.
type Row struct {
	// Account is the account's name in the config (the ledger key when
	// there is no config).
	Account string `json:"account"`
	// SourceFolder is the IMAP folder; "" for POP3.
	SourceFolder      string `json:"source_folder"`
	SourceUIDValidity uint32 `json:"source_uidvalidity,omitempty"`
	// SourceID is the IMAP UID, or the POP3 UIDL (the content's SHA-256
	// for a server without UIDL), or the ledger's key when it is neither.
	SourceID        string    `json:"source_id"`
	DestFolder      string    `json:"dest_folder"`
	DestUIDValidity uint32    `json:"dest_uidvalidity,omitempty"`
	DestUID         uint32    `json:"dest_uid,omitempty"` // 0: not known
	Size            int64     `json:"size"`
	State           State     `json:"state"`
	Reason          string    `json:"reason,omitempty"`
	When            time.Time `json:"when"`
}

// RowOf is the row of entry e of the account named name.
func RowOf(name string, e pipeline.Entry) Row {
	r := Row{Account: name, DestFolder: e.DestMailbox, DestUIDValidity: e.DestUIDValidity, DestUID: e.DestUID,
		Size: e.Size, Reason: e.Reason, When: e.Updated}
	if mb, uv, uid, err := imapsrc.ParseKey(e.Key); err == nil {
		r.SourceFolder, r.SourceUIDValidity, r.SourceID = mb, uv, strconv.FormatUint(uint64(uid), 10)
	} else if uidl, ok := pop3src.UIDLOfKey(e.Key); ok {
		r.SourceID = uidl
	} else {
		r.SourceID = e.Key
	}
	switch e.State {
	case pipeline.StateDone:
		r.State = Copied
		if !e.DoneAt.IsZero() {
			r.When = e.DoneAt // later updates are flag syncs
		}
	case pipeline.StateSkipped:
		r.State = Skipped
	case pipeline.StateFailed:
		r.State = Failed
	case pipeline.StateGone, pipeline.StateRemoved, pipeline.StateRemoving:
		r.State = map[pipeline.State]State{pipeline.StateGone: DeletedAtSource,
			pipeline.StateRemoved: RemovedFromDestination, pipeline.StateRemoving: BeingRemoved}[e.State]
		if e.State != pipeline.StateRemoving && !e.GoneAt.IsZero() {
			r.When = e.GoneAt
		}
	case pipeline.StateMoving:
		r.State = BeingMoved
	default:
		r.State = Pending
	}
	return r
}

// Format is a report's file format.
type Format string

// Formats.
const (
	CSV  Format = "csv"
	JSON Format = "json" // one array, one row per line
)

// ParseFormat checks a format's name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case CSV, JSON:
		return f, nil
	}
	return "", fmt.Errorf("report format %q: want csv or json", s)
}

// ContentType is the format's media type.
func (f Format) ContentType() string {
	if f == JSON {
		return "application/json"
	}
	return "text/csv; charset=utf-8"
}

// Account is one account to report: its name and its ledger key.
type Account struct {
	Name, Key string
}

// ScanFunc calls fn with each ledger entry of the account with ledger key
// key, one at a time, and returns fn's first error.
type ScanFunc func(ctx context.Context, key string, fn func(pipeline.Entry) error) error

// Write writes the report of accounts, in their order, to w and returns
// how many rows it wrote. Rows go out as scan yields them: memory does not
// grow with the ledger.
func Write(ctx context.Context, w io.Writer, format Format, accounts []Account, scan ScanFunc) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	out, err := newEncoder(bw, format)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range accounts {
		err := scan(ctx, a.Key, func(e pipeline.Entry) error {
			n++
			return out.row(RowOf(a.Name, e))
		})
		if err != nil {
			return n, fmt.Errorf("writing the report of %s: %w", a.Name, err)
		}
	}
	if err := out.close(); err != nil {
		return n, fmt.Errorf("writing the report: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("writing the report: %w", err)
	}
	return n, nil
}

// encoder writes rows in one format.
type encoder struct {
	row   func(Row) error
	close func() error
}

// Header is the CSV report's first line, its columns in order.
var Header = []string{"account", "source_folder", "source_uidvalidity", "source_id", "dest_folder",
	"dest_uidvalidity", "dest_uid", "size", "state", "reason", "when"}

func newEncoder(w io.Writer, format Format) (*encoder, error) {
	switch format {
	case CSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(Header); err != nil {
			return nil, err
		}
		rec := make([]string, len(Header))
		num := func(n uint32) string {
			if n == 0 {
				return ""
			}
			return strconv.FormatUint(uint64(n), 10)
		}
		return &encoder{
			row: func(r Row) error {
				rec = append(rec[:0], r.Account, r.SourceFolder, num(r.SourceUIDValidity), r.SourceID, r.DestFolder,
					num(r.DestUIDValidity), num(r.DestUID), strconv.FormatInt(r.Size, 10), string(r.State), r.Reason,
					r.When.UTC().Format(time.RFC3339))
				return cw.Write(rec)
			},
			close: func() error { cw.Flush(); return cw.Error() },
		}, nil
	case JSON:
		sep := "[\n"
		return &encoder{
			row: func(r Row) error {
				r.When = r.When.UTC()
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				if _, err := io.WriteString(w, sep); err != nil {
					return err
				}
				sep = ",\n"
				_, err = w.Write(b)
				return err
			},
			close: func() error {
				end := "\n]\n"
				if sep == "[\n" {
					end = "[]\n"
				}
				_, err := io.WriteString(w, end)
				return err
			},
		}, nil
	}
	return nil, fmt.Errorf("report format %q: want csv or json", format)
}
