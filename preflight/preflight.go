// Package preflight answers, for one account, what a run would do without
// doing it (`mailferry plan`): the capabilities of both servers that
// matter, the folder mapping, the messages a run would copy and skip, the
// destination's quota against the bytes to move, and an estimated
// duration from timing the download of the first few messages.
//
// The order of effects: for the sides that log in with an OAuth2 grant
// it first obtains a token from the token endpoint (a grant that is
// refused is reported with what the administrator must set, and that side
// is not connected to); it then opens the destination read-only (EXAMINE,
// STATUS, GETQUOTAROOT), asks a POP3 source for CAPA before logging in,
// opens the source and maps its folders as the copy would (creating
// none), lists it, reads the ledger's entries, and downloads a sample
// (BODY.PEEK, RETR). It writes nothing anywhere: the POP3 session ends
// without QUIT, nothing is created, flagged, deleted or recorded.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/verify"
)

// The estimate downloads at most SampleMessages of the messages to move,
// stopping early past SampleBytes.
const (
	SampleMessages = 5
	SampleBytes    = 4 << 20
)

// Skip is a message the copy would skip.
type Skip struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

// Quota is the destination's storage quota against the bytes to move.
type Quota struct {
	Root       string `json:"root"`
	UsedBytes  int64  `json:"used_bytes"`
	LimitBytes int64  `json:"limit_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
	Enough     bool   `json:"enough"`
}

// Estimate is the measured sample and what it predicts.
type Estimate struct {
	SampleMessages int           `json:"sample_messages"`
	SampleBytes    int64         `json:"sample_bytes"`
	SampleTime     time.Duration `json:"sample_ns"`
	Estimate       time.Duration `json:"estimate_ns"`
	Method         string        `json:"method"`
}

// Result is what a run of one account would do.
type Result struct {
	Account string `json:"account"`
	Key     string `json:"ledger_key"`
	// SourceCaps and DestCaps are the capabilities that matter, true when
	// offered. SourceCaps comes from CAPA before login (RFC 2449 §5).
	SourceCaps map[string]bool `json:"source_capabilities,omitempty"`
	DestCaps   map[string]bool `json:"destination_capabilities,omitempty"`
	// AppendLimit is the destination's limit (mailbox, else server); 0: none.
	AppendLimit int64 `json:"append_limit,omitempty"`
	// Folders maps source folders to destination mailboxes.
	Folders []Folder `json:"folders,omitempty"`
	// Listed is every source message; AlreadyDone and SkippedBefore are the
	// ledger's; ToMove what a run would copy, Skips what it would skip.
	Listed        int       `json:"listed"`
	AlreadyDone   int       `json:"already_done"`
	SkippedBefore int       `json:"skipped_before"`
	ToMove        int       `json:"to_move"`
	ToMoveBytes   int64     `json:"to_move_bytes"`
	Skips         []Skip    `json:"skips"`
	Quota         *Quota    `json:"quota,omitempty"`
	Estimate      *Estimate `json:"estimate,omitempty"`
	// OAuth2 are the sides that log in with an OAuth2 grant, and whether
	// a token was obtained, before any server was connected to.
	OAuth2 []Token `json:"oauth2,omitempty"`
	// Notes are what the servers' answers tell besides problems: optional
	// features refused and what the copy does without them, folders that
	// go to a safe name (account.Account.Notes).
	Notes []string `json:"notes,omitempty"`
	// Problems are what would make a run fail or be partial.
	Problems []string `json:"problems"`
	// FolderErrors are the problems that are folders the command line or
	// the config names and that are not there (account.FolderError): a
	// run would refuse the account before copying anything.
	FolderErrors []string `json:"folder_errors,omitempty"`
	OK           bool     `json:"ok"`
	// SourceListed says the source was listed: the counts mean something.
	SourceListed bool `json:"source_listed"`
}

// Token is one side's OAuth2 login: a token was obtained, or Error says
// why not (the grant, the endpoint's answer, what to check).
type Token struct {
	Side  string `json:"side"`
	Login string `json:"login"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Folder is a source folder, where the copy puts it and what it would move.
type Folder struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Exists      bool   `json:"exists"`
	Messages    uint32 `json:"messages"`
	// ToMove and ToMoveBytes are what a run would copy from this source
	// folder (IMAP sources; for POP3 the account's totals say it).
	ToMove      int   `json:"to_move,omitempty"`
	ToMoveBytes int64 `json:"to_move_bytes,omitempty"`
}

// Inspect inspects one account, writing nothing: the POP3 session ends
// without QUIT, an IMAP source is only EXAMINEd and read with BODY.PEEK,
// its folders are mapped as the copy maps them without creating any, the
// destination is only listed, STATUSed and asked for its quota, and the
// ledger (nil: none) is only read. What would make a run fail or be
// partial is in Result.Problems; Inspect itself does not fail.
func Inspect(ctx context.Context, a *account.Account, ledger *checkpoint.Ledger, log *slog.Logger) (pa Result) {
	pa = Result{Account: a.Name, Key: a.Options.Name, Skips: []Skip{}, Problems: []string{}}
	problem := func(format string, args ...any) { pa.Problems = append(pa.Problems, fmt.Sprintf(format, args...)) }
	defer func() {
		pa.Notes = a.Notes()
		pa.OK = len(pa.Problems) == 0
		log.Debug("account inspected", "account", a.Name, "to_move", pa.ToMove, "problems", len(pa.Problems))
	}()

	// OAuth2 grants first, connecting to nothing: a consent, delegation or
	// secret that is missing is named as such, and the side it fails is
	// not connected to (its login could only fail).
	tokenErr := map[string]error{}
	for _, c := range a.CheckTokens(ctx) {
		t := Token{Side: c.Side, Login: c.Login, OK: c.Err == nil}
		if c.Err != nil {
			t.Error = c.Err.Error()
			tokenErr[c.Side] = c.Err
			problem("%s: no OAuth2 token: %v", c.Side, c.Err)
		}
		pa.OAuth2 = append(pa.OAuth2, t)
	}

	// Destination: log in, capabilities, the mailbox, the quota. An IMAP
	// source's folders go to several mailboxes; the limits and the quota
	// are read on INBOX, which always exists.
	isIMAP := a.SourceIsIMAP()
	quotaMailbox := a.Options.Mailbox
	if isIMAP || quotaMailbox == "" {
		quotaMailbox = "INBOX"
	}
	var dst *verify.IMAP
	derr := tokenErr["destination"]
	if derr == nil {
		if dst, derr = a.OpenReader(ctx); derr != nil {
			problem("destination %s: %v", a.Dest, withHint(derr))
		}
	}
	if derr == nil {
		defer dst.Close()
		pa.DestCaps = map[string]bool{}
		for _, c := range []string{"MULTIAPPEND", "LITERAL+", "UIDPLUS", "APPENDLIMIT", "SPECIAL-USE", "QUOTA", "IDLE"} {
			pa.DestCaps[c] = dst.HasCapability(c)
		}
		if !pa.DestCaps["APPENDLIMIT"] {
			// RFC 7889 §3: APPENDLIMIT=N is advertised with its value.
			pa.DestCaps["APPENDLIMIT"] = dst.AppendLimit() > 0
		}
		st, err := dst.Status(ctx, quotaMailbox)
		if err != nil {
			problem("destination mailbox %q: %v", quotaMailbox, err)
		}
		pa.AppendLimit = st.AppendLimit
		if !isIMAP {
			pa.Folders = []Folder{{Source: "(POP3 maildrop)", Destination: a.Options.Mailbox, Exists: st.Exists, Messages: st.Messages}}
		}
	}

	// Source: capabilities before login, then a session to list and sample.
	// An IMAP source's folders are mapped through a destination session:
	// neither side without a token is connected to.
	var (
		srcMsgs []pipeline.SourceMessage
		sample  Estimate
		folders []Folder
	)
	serr := tokenErr["source"]
	if serr == nil && isIMAP {
		serr = tokenErr["destination"]
	}
	if serr == nil && tokenErr["destination"] == nil {
		// The folders the user named, checked as a run checks them
		// first; a source folder that is not there ends the inspection
		// of the source.
		for _, fe := range folderErrors(a.CheckFolders(ctx)) {
			problem("%v", fe)
			pa.FolderErrors = append(pa.FolderErrors, fe.Error())
			if fe.Side == "source" && serr == nil {
				serr = fe
			}
		}
		if serr != nil {
			return pa
		}
	}
	if serr == nil {
		if srcMsgs, sample, folders, serr = inspectSource(ctx, a, &pa, ledger); serr != nil {
			problem("source %s: %v", a.Source, withHint(serr))
		}
	}
	// folderOf is the planned folder of a message to move (IMAP sources).
	folderOf := func(pipeline.SourceMessage) *Folder { return nil }
	if serr == nil && isIMAP {
		// The folder mapping, source → destination, in source order.
		idx := map[string]int{}
		for _, f := range folders {
			idx[f.Source] = len(pa.Folders)
			pf := f
			if derr == nil {
				st, err := dst.Status(ctx, f.Destination)
				if err != nil {
					problem("destination mailbox %q: %v", f.Destination, err)
				}
				pf.Exists, pf.Messages = st.Exists, st.Messages
			}
			pa.Folders = append(pa.Folders, pf)
		}
		folderOf = func(m pipeline.SourceMessage) *Folder {
			if i, ok := idx[m.Mailbox]; ok {
				return &pa.Folders[i]
			}
			return nil
		}
	}
	if serr == nil {
		limit := pipeline.NewSizeLimit(a.Options.MaxMessageBytes, pa.AppendLimit)
		for _, m := range srcMsgs {
			// As the copy decides before downloading (SkipAnnounced); a
			// message a little over is downloaded and measured by the
			// copy, and reported here as probably skipped.
			if size := a.Options.ExpectedSize(m); !limit.Allows(size) {
				reason := limit.ProbableReason(size)
				if limit.SkipAnnounced(size) {
					reason = limit.AnnouncedReason(size)
				}
				pa.Skips = append(pa.Skips, Skip{Key: verify.DisplayKey(m.Key), Size: m.Size, Reason: reason})
				continue
			}
			pa.ToMove++
			pa.ToMoveBytes += m.Size
			if f := folderOf(m); f != nil {
				f.ToMove++
				f.ToMoveBytes += m.Size
			}
		}
		if len(pa.Skips) > 0 {
			problem("%d messages would be skipped as too big", len(pa.Skips))
		}
		if sample.SampleMessages > 0 {
			pa.Estimate = &sample
			scale := max(float64(pa.ToMove)/float64(sample.SampleMessages), float64(pa.ToMoveBytes)/float64(max(sample.SampleBytes, 1)))
			pa.Estimate.Estimate = time.Duration(float64(sample.SampleTime) * scale).Round(time.Millisecond)
		}
	}
	if derr == nil && serr == nil {
		qs, err := dst.Quota(ctx, quotaMailbox)
		if err != nil {
			problem("destination quota: %v", err)
		}
		for _, q := range qs {
			if q.LimitBytes <= 0 {
				continue
			}
			pq := &Quota{Root: q.Root, UsedBytes: q.UsedBytes, LimitBytes: q.LimitBytes, FreeBytes: max(q.LimitBytes-q.UsedBytes, 0)}
			pq.Enough = pa.ToMoveBytes <= pq.FreeBytes
			if pa.Quota == nil || pq.FreeBytes < pa.Quota.FreeBytes {
				pa.Quota = pq
			}
		}
		if pa.Quota != nil && !pa.Quota.Enough {
			problem("destination quota too small: %s free (quota root %q), %s to move",
				config.FormatByteSize(pa.Quota.FreeBytes), pa.Quota.Root, config.FormatByteSize(pa.ToMoveBytes))
		}
	}
	return pa
}

// withHint adds to a login refused with a grant's token what to check at
// the provider (the token endpoint issued it, so a mail-side setting is
// missing).
func withHint(err error) string {
	var refused *account.TokenRefusedError
	if errors.As(err, &refused) {
		if h := refused.Hint(); h != "" {
			return err.Error() + "; check: " + h
		}
	}
	return err.Error()
}

// inspectSource reads the source's capabilities (POP3) or folder mapping
// (IMAP), lists it, removes what the ledger has as done or skipped, and
// times the download of the first few messages to move. It returns the
// messages to move and, for an IMAP source, the folders the copy would copy
// in source order.
func inspectSource(ctx context.Context, a *account.Account, pa *Result, ledger *checkpoint.Ledger) ([]pipeline.SourceMessage, Estimate, []Folder, error) {
	var est Estimate
	isIMAP := a.SourceIsIMAP()
	if !isIMAP {
		caps, err := a.SourceCapabilities(ctx)
		if err != nil {
			return nil, est, nil, err
		}
		pa.SourceCaps = map[string]bool{}
		for _, c := range []string{"UIDL", "PIPELINING", "STLS", "USER", "TOP"} {
			pa.SourceCaps[c] = caps.Has(c)
		}
		pa.SourceCaps["SASL PLAIN"] = caps.HasSASL("PLAIN")
	}
	// The copy's folder mapping, creating nothing.
	src, mapped, err := a.OpenSourceMapped(ctx)
	if err != nil {
		return nil, est, nil, err
	}
	// No commit: nothing is deleted or expunged at the source (for POP3 no
	// QUIT, RFC 1939 §6).
	defer src.Close(false)
	var folders []Folder
	dests := pipeline.AllTo(a.Options.Mailbox)
	if isIMAP {
		dests = pipeline.MappedFolders(mapped)
		all, err := src.(*imapsrc.Source).Folders(ctx)
		if err != nil {
			return nil, est, nil, fmt.Errorf("listing source folders: %w", err)
		}
		for _, f := range all {
			if d, ok := mapped[f.Name]; ok {
				folders = append(folders, Folder{Source: f.Name, Destination: d})
			}
		}
	}
	msgs, err := pipeline.ListAll(ctx, src)
	if err != nil {
		return nil, est, nil, err
	}
	msgs = slices.DeleteFunc(msgs, func(m pipeline.SourceMessage) bool { _, ok := dests.Dest(m); return !ok })
	pa.Listed = len(msgs)
	pa.SourceListed = true
	entries, err := ledgerEntries(ctx, ledger, a, msgs)
	if err != nil {
		return nil, est, nil, err
	}
	var todo []pipeline.SourceMessage
	for _, m := range msgs {
		e, ok := entries[m.Key]
		switch pipeline.DispositionOf(e, ok) {
		case pipeline.AlreadyDone:
			pa.AlreadyDone++
		case pipeline.SkippedEarlier:
			pa.SkippedBefore++
		default:
			todo = append(todo, m)
		}
	}
	est.Method = "time to download (RETR or UID FETCH BODY.PEEK[]) the first messages to move, scaled by the larger of the message-count and byte ratios; the destination side is not measured, since plan appends nothing"
	start := time.Now()
	limit := pipeline.NewSizeLimit(a.Options.MaxMessageBytes, pa.AppendLimit)
	for _, m := range todo {
		if est.SampleMessages >= SampleMessages || est.SampleBytes >= SampleBytes {
			break
		}
		if limit.SkipAnnounced(a.Options.ExpectedSize(m)) {
			continue // the copy does not download it either
		}
		n, err := src.Fetch(ctx, m, io.Discard)
		if err != nil {
			return nil, est, nil, fmt.Errorf("sampling message %s: %w", verify.DisplayKey(m.Key), err)
		}
		est.SampleMessages++
		est.SampleBytes += n
	}
	est.SampleTime = time.Since(start)
	return todo, est, folders, nil
}

// folderErrors returns the *account.FolderError values err is or joins.
// Other errors (a server that cannot be reached) are left to the steps
// that follow, which report them.
func folderErrors(err error) []*account.FolderError {
	var out []*account.FolderError
	var walk func(error)
	walk = func(err error) {
		var fe *account.FolderError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		} else if errors.As(err, &fe) {
			out = append(out, fe)
		}
	}
	walk(err)
	return out
}

// ledgerEntries returns what the ledger (nil: none) has of msgs, by key:
// the account is looked up without being created, and its entries are read
// a chunk of keys at a time.
func ledgerEntries(ctx context.Context, ledger *checkpoint.Ledger, a *account.Account, msgs []pipeline.SourceMessage) (map[string]pipeline.Entry, error) {
	out := map[string]pipeline.Entry{}
	if ledger == nil {
		return out, nil
	}
	id, ok, err := ledger.LookupAccount(ctx, a.LedgerSpec())
	if err != nil || !ok {
		return out, err
	}
	keys := make([]string, 0, pipeline.MaxLookup)
	for chunk := range slices.Chunk(msgs, pipeline.MaxLookup) {
		keys = keys[:0]
		for _, m := range chunk {
			keys = append(keys, m.Key)
		}
		if err := ledger.Lookup(ctx, id, keys, func(e pipeline.Entry) error {
			out[e.Key] = e
			return nil
		}); err != nil {
			return nil, fmt.Errorf("reading the checkpoint: %w", err)
		}
	}
	return out, nil
}
