package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// memSource is an in-memory POP3-like source.
type memSource struct {
	mu        sync.Mutex
	msgs      []memMsg
	deleted   map[string]bool // DELE'd in the current session
	committed map[string]bool // deleted for good (QUIT)
	fetches   int
	failFetch int // fail the n-th Fetch (1-based) of this session with a transient error
	// immediate makes Delete take effect at once, as IMAP's UID EXPUNGE
	// does, instead of at Close(true) as POP3's QUIT.
	immediate bool
	// announce overrides the size List announces for a key (a server
	// whose LIST or RFC822.SIZE is wrong).
	announce map[string]int64
	// chunk, when set, makes Fetch write the body in pieces of this many
	// bytes, stopping at the writer's first error (as the real sources
	// do); accepted counts per key the bytes the writer took.
	chunk    int
	fetched  []string // keys in Fetch order
	accepted map[string]int64
	// pageSize is how many messages List hands over at a time (0:
	// ListPage), so that small tests cross pages too.
	pageSize int
	// inSession: a List began a session that Close has not ended.
	inSession bool
	// onDelete, when set, sees each Delete before it takes effect.
	onDelete func(msgs []SourceMessage)
	// beforeFetch, when set, runs at the start of each Fetch.
	beforeFetch func(msg SourceMessage)
}

type memMsg struct {
	key  string
	body []byte
}

func (s *memSource) List(_ context.Context, page func([]SourceMessage) error) error {
	s.mu.Lock()
	// The first List of a session starts it; as a POP3 server, a second
	// one keeps the messages marked deleted marked (and leaves them out).
	if !s.inSession {
		s.inSession, s.deleted = true, nil
	}
	var out []SourceMessage
	for _, m := range s.msgs {
		if !s.committed[m.key] && !s.deleted[m.key] {
			size, ok := s.announce[m.key]
			if !ok {
				size = int64(len(m.body))
			}
			out = append(out, SourceMessage{Key: m.key, Size: size})
		}
	}
	n := s.pageSize
	if n <= 0 {
		n = ListPage
	}
	s.mu.Unlock()
	for chunk := range slices.Chunk(out, n) {
		if err := page(chunk); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Fetch(_ context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	if s.beforeFetch != nil {
		s.beforeFetch(msg)
	}
	s.mu.Lock()
	s.fetches++
	n := s.fetches
	s.fetched = append(s.fetched, msg.Key)
	s.mu.Unlock()
	if s.failFetch > 0 && n == s.failFetch {
		return 0, errors.New("connection reset by peer")
	}
	for _, m := range s.msgs {
		if m.key != msg.Key {
			continue
		}
		if s.chunk <= 0 {
			k, err := w.Write(m.body)
			return int64(k), err
		}
		var total int64
		for b := m.body; len(b) > 0; b = b[min(s.chunk, len(b)):] {
			k, err := w.Write(b[:min(s.chunk, len(b))])
			total += int64(k)
			if err != nil {
				s.mu.Lock()
				s.accepted[m.key] = total
				s.mu.Unlock()
				return total, fmt.Errorf("writing message: %w", err)
			}
		}
		s.mu.Lock()
		s.accepted[m.key] = total
		s.mu.Unlock()
		return total, nil
	}
	return 0, fmt.Errorf("no message %q", msg.Key)
}

func (s *memSource) Delete(_ context.Context, msgs []SourceMessage) error {
	if s.onDelete != nil {
		s.onDelete(msgs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted == nil {
		s.deleted = map[string]bool{}
	}
	for _, m := range msgs {
		s.deleted[m.Key] = true
		if s.immediate {
			if s.committed == nil {
				s.committed = map[string]bool{}
			}
			s.committed[m.Key] = true
		}
	}
	return nil
}

func (s *memSource) Close(commit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if commit {
		if s.committed == nil {
			s.committed = map[string]bool{}
		}
		for k := range s.deleted {
			s.committed[k] = true
		}
	}
	s.deleted = nil
	s.fetches = 0
	s.inSession = false
	return nil
}

type storedMsg struct {
	uid   uint32
	body  []byte
	flags []string
	date  time.Time
}

type memMailbox struct {
	uidValidity uint32
	uidNext     uint32
	msgs        []storedMsg
}

// errClass is an error with a class, as imapdst's reply errors are.
type errClass struct {
	msg       string
	class     Class
	permanent bool
}

func (e *errClass) Error() string     { return e.msg }
func (e *errClass) ErrorClass() Class { return e.class }
func (e *errClass) Permanent() bool   { return e.permanent }

// memDest is an in-memory IMAP-like destination shared by all sessions.
type memDest struct {
	mu        sync.Mutex
	boxes     map[string]*memMailbox
	appendLim int64
	// loseAfter: after storing this many messages in total, the next
	// Append stores its whole batch but reports a lost connection before
	// any result, as when a connection drops after the server's OK.
	loseAfter int
	stored    int
	// recreateAt: when this many messages were stored in total, the next
	// Append finds its mailbox deleted and created again (UIDVALIDITY one
	// higher, UIDs from 1), as imapdst does after a [TRYCREATE].
	recreateAt int
	// refuseFlags makes StoreFlags refuse every update per message (a
	// keyword the server will not take).
	refuseFlags bool
	// reject refuses messages whose body contains this string.
	reject          string
	rejectClass     Class
	rejectPermanent bool
	// pipelined, when set, makes sessions AppendStarters.
	pipelined *pipelining
	// holdNext: the next Append stores nothing yet and reports a lost
	// connection, as when a client gives up on a command stuck on a slow
	// link; landHeld stores it later, as the server completing it late.
	holdNext  bool
	held      []heldAppend
	noUIDPlus bool
	// capsNoUIDPlus makes Capabilities say the server has no UIDPLUS.
	capsNoUIDPlus bool
	// failEnsure fails this many EnsureMailbox calls, the first ones,
	// with a transient error (a connection lost).
	failEnsure int
	// beforeExpunge, when set, runs at the start of every Expunge.
	beforeExpunge func()
	// deleted counts the mailboxes DeleteMailbox deleted: a mailbox
	// created after gets a UIDVALIDITY that much higher, as a server gives
	// a folder created again under a name it had.
	deleted uint32
	// opens counts the sessions opened, prepares the PrepareAppend calls
	// (AppendPreparer), appends the Append calls and unprepared those
	// no PrepareAppend came before.
	opens, prepares, appends, unprepared int
}

type heldAppend struct {
	mailbox string
	msgs    []OutgoingMessage
}

// landHeld stores the batches held by holdNext, as late completions.
func (d *memDest) landHeld() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.held {
		mb := d.boxes[h.mailbox]
		for _, m := range h.msgs {
			body, _ := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size))
			mb.msgs = append(mb.msgs, storedMsg{uid: mb.uidNext, body: body, flags: m.Flags, date: m.InternalDate})
			mb.uidNext++
			d.stored++
		}
	}
	d.held = nil
}

func newMemDest() *memDest { return &memDest{boxes: map[string]*memMailbox{}} }

type memDestSession struct{ d *memDest }

func (d *memDest) open(context.Context) (Destination, error) {
	d.mu.Lock()
	d.opens++
	d.mu.Unlock()
	if d.pipelined != nil {
		return &pipelinedSession{memDestSession: memDestSession{d}, p: d.pipelined}, nil
	}
	return &memDestSession{d}, nil
}

// pipelining makes memDest sessions AppendStarters that store a batch only
// when its wait is called, as a server still busy with the one before, and
// checks the protocol when a batch is started: every message is pending in
// the ledger, and at most two batches per session are in flight.
type pipelining struct {
	ledger  *memLedger
	account AccountID
	mu      sync.Mutex
	max     int      // most batches in flight in one session
	errs    []string // protocol violations seen
}

type pipelinedSession struct {
	memDestSession
	p        *pipelining
	inflight int
}

func (s *pipelinedSession) StartAppend(ctx context.Context, mailbox string, msgs []OutgoingMessage) func() ([]AppendResult, error) {
	s.p.check(msgs)
	s.inflight++
	s.p.mu.Lock()
	s.p.max = max(s.p.max, s.inflight)
	if s.inflight > 2 {
		s.p.errs = append(s.p.errs, fmt.Sprintf("%d batches in flight", s.inflight))
	}
	s.p.mu.Unlock()
	return func() ([]AppendResult, error) {
		s.inflight--
		return s.Append(ctx, mailbox, msgs)
	}
}

// check records a message started without a pending ledger entry (found
// by its Message-ID).
func (p *pipelining) check(msgs []OutgoingMessage) {
	p.ledger.mu.Lock()
	pending := map[string]bool{}
	for _, e := range p.ledger.entries[p.account] {
		if e.State == StatePending {
			pending[e.MessageID] = true
		}
	}
	p.ledger.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		body, _ := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size))
		_, rest, _ := bytes.Cut(body, []byte("Message-ID: <"))
		id, _, _ := bytes.Cut(rest, []byte(">"))
		if !pending["<"+string(id)+">"] {
			p.errs = append(p.errs, fmt.Sprintf("<%s> sent without a pending entry", id))
		}
	}
}

func (s *memDestSession) Capabilities() Capabilities {
	return Capabilities{MultiAppend: true, UIDPlus: !s.d.capsNoUIDPlus, AppendLimit: s.d.appendLim}
}

func (s *memDestSession) EnsureMailbox(_ context.Context, name string) (MailboxStatus, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if s.d.failEnsure > 0 {
		s.d.failEnsure--
		return MailboxStatus{}, &errClass{msg: "connection reset by peer", class: ClassTransient}
	}
	mb := s.d.boxes[name]
	if mb == nil {
		mb = &memMailbox{uidValidity: 7 + s.d.deleted, uidNext: 1}
		s.d.boxes[name] = mb
	}
	return MailboxStatus{Name: name, UIDValidity: mb.uidValidity, UIDNext: mb.uidNext}, nil
}

// PrepareAppend counts the calls: the sessions open nothing.
func (s *memDestSession) PrepareAppend(context.Context) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.prepares++
}

func (s *memDestSession) Append(_ context.Context, mailbox string, msgs []OutgoingMessage) ([]AppendResult, error) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.appends++
	if d.prepares == 0 {
		d.unprepared++
	}
	mb := d.boxes[mailbox]
	if mb == nil {
		return nil, &errClass{msg: "NO [TRYCREATE]", class: ClassPerMessage}
	}
	if d.recreateAt > 0 && d.stored >= d.recreateAt {
		d.recreateAt = 0
		mb = &memMailbox{uidValidity: mb.uidValidity + 1, uidNext: 1}
		d.boxes[mailbox] = mb
	}
	if d.holdNext {
		d.holdNext = false
		held := heldAppend{mailbox: mailbox}
		for _, m := range msgs {
			// The caller's bodies are released when it gives up.
			body, _ := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size))
			m.Body = bytes.NewReader(body)
			held.msgs = append(held.msgs, m)
		}
		d.held = append(d.held, held)
		return nil, errors.New("i/o timeout: no reply")
	}
	lose := d.loseAfter > 0 && d.stored >= d.loseAfter
	var res []AppendResult
	for _, m := range msgs {
		body, _ := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size))
		if d.reject != "" && bytes.Contains(body, []byte(d.reject)) {
			res = append(res, AppendResult{Err: &errClass{"NO [TOOBIG] refused", d.rejectClass, d.rejectPermanent}})
			if d.rejectClass == ClassFatal {
				return res, res[len(res)-1].Err
			}
			continue
		}
		uid := mb.uidNext
		mb.uidNext++
		mb.msgs = append(mb.msgs, storedMsg{uid: uid, body: body, flags: m.Flags, date: m.InternalDate})
		d.stored++
		if d.noUIDPlus {
			res = append(res, AppendResult{})
		} else {
			res = append(res, AppendResult{UIDValidity: mb.uidValidity, UID: uid})
		}
	}
	if lose {
		d.loseAfter = 0
		return nil, errors.New("read tcp: connection reset by peer")
	}
	return res, nil
}

func (s *memDestSession) ListSince(_ context.Context, mailbox string, uidValidity, from uint32) ([]DestMessage, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	mb := s.d.boxes[mailbox]
	if mb == nil {
		return nil, nil
	}
	if mb.uidValidity != uidValidity {
		return nil, ErrUIDValidityChanged
	}
	var out []DestMessage
	for _, m := range mb.msgs {
		if m.uid >= from {
			out = append(out, DestMessage{UID: m.uid, Size: int64(len(m.body)), Deleted: slices.Contains(m.flags, `\Deleted`)})
		}
	}
	return out, nil
}

func (s *memDestSession) SearchMessageID(context.Context, string, string) ([]uint32, error) {
	return nil, errors.New("not used")
}

func (s *memDestSession) Digest(_ context.Context, mailbox string, uid uint32) ([32]byte, int64, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, m := range s.d.boxes[mailbox].msgs {
		if m.uid == uid {
			return sha256.Sum256(m.body), int64(len(m.body)), nil
		}
	}
	return [32]byte{}, 0, fmt.Errorf("no UID %d", uid)
}

func (s *memDestSession) Expunge(_ context.Context, mailbox string, uidValidity uint32, uids []uint32) error {
	if s.d.beforeExpunge != nil {
		s.d.beforeExpunge()
	}
	if s.d.noUIDPlus {
		return ErrCannotExpunge
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	mb := s.d.boxes[mailbox]
	if mb == nil || mb.uidValidity != uidValidity {
		return ErrUIDValidityChanged
	}
	mb.msgs = slices.DeleteFunc(mb.msgs, func(m storedMsg) bool { return slices.Contains(uids, m.uid) })
	return nil
}

func (s *memDestSession) Close() error { return nil }

// bodies returns the mailbox's message bodies, sorted.
func (d *memDest) bodies(mailbox string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	if mb := d.boxes[mailbox]; mb != nil {
		for _, m := range mb.msgs {
			out = append(out, string(m.body))
		}
	}
	sort.Strings(out)
	return out
}

// Account numbers of the tests' ledger.
const (
	alice AccountID = 1
	bob   AccountID = 2
)

// memLedger is an in-memory Ledger with the checkpoint package's rules
// (checkpoint's conformance suite holds the real one to them).
type memLedger struct {
	mu         sync.Mutex
	entries    map[AccountID]map[string]Entry
	locked     map[AccountID]bool
	runs       []RunRecord
	failCommit int // fail the n-th Commit (1-based)
	commits    int
	resent     map[AccountID][]Resent
	folders    map[AccountID]map[Side]map[string]Folder
	usage      map[AccountID]map[time.Time]Usage
	lastID     int64
	paused     map[AccountID]bool
	retry      map[AccountID]bool
	lookups    int // Lookup calls
	// beforeCommit, when set, sees every Commit first: an error fails it
	// with nothing written.
	beforeCommit func(Changes) error
}

func newMemLedger() *memLedger {
	return &memLedger{entries: map[AccountID]map[string]Entry{}, locked: map[AccountID]bool{},
		resent: map[AccountID][]Resent{}, folders: map[AccountID]map[Side]map[string]Folder{},
		usage: map[AccountID]map[time.Time]Usage{}, paused: map[AccountID]bool{}, retry: map[AccountID]bool{}}
}

type memHold struct {
	l       *memLedger
	account AccountID
	paused  chan struct{}
	once    sync.Once
	retry   bool
}

func (h *memHold) Lost() <-chan struct{}   { return nil }
func (h *memHold) Paused() <-chan struct{} { return h.paused }
func (h *memHold) RetrySkipped() bool      { return h.retry }
func (h *memHold) Release(context.Context) error {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	delete(h.l.locked, h.account)
	return nil
}

func (l *memLedger) Hold(_ context.Context, account AccountID) (Hold, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locked[account] {
		return nil, fmt.Errorf("account %d: %w", account, ErrLocked)
	}
	l.locked[account] = true
	h := &memHold{l: l, account: account, paused: make(chan struct{}), retry: l.retry[account]}
	if l.paused[account] {
		close(h.paused)
	}
	return h, nil
}

// all returns a copy of the account's entries, by key.
func (l *memLedger) all(account AccountID) map[string]Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Entry{}
	for k, e := range l.entries[account] {
		out[k] = e
	}
	return out
}

// put writes entries directly, as an earlier run would have.
func (l *memLedger) put(account AccountID, entries ...Entry) {
	if err := l.Commit(context.Background(), account, Changes{Put: entries}); err != nil {
		panic(err)
	}
}

func (l *memLedger) Lookup(_ context.Context, account AccountID, keys []string, fn func(Entry) error) error {
	if len(keys) > MaxLookup {
		return fmt.Errorf("Lookup of %d keys, more than %d", len(keys), MaxLookup)
	}
	l.mu.Lock()
	l.lookups++
	var out []Entry
	for _, k := range keys {
		if e, ok := l.entries[account][k]; ok {
			out = append(out, e)
		}
	}
	l.mu.Unlock()
	for _, e := range out {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLedger) Scan(_ context.Context, account AccountID, q Query) ([]Entry, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys []string
	for k, e := range l.entries[account] {
		if k <= q.After || !strings.HasPrefix(k, q.KeyPrefix) ||
			q.States != nil && !slices.Contains(q.States, e.State) || q.Digest != "" && e.Digest != q.Digest {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	limit := q.Limit
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	next := ""
	if len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1]
	}
	out := make([]Entry, len(keys))
	for i, k := range keys {
		e := l.entries[account][k]
		if q.KeysOnly {
			e = Entry{Key: e.Key, State: e.State, ReasonClass: e.ReasonClass, Flags: e.Flags, Size: e.Size,
				Updated: e.Updated, DoneAt: e.DoneAt, GoneAt: e.GoneAt}
		}
		out[i] = e
	}
	return out, next, nil
}

func (l *memLedger) Copies(_ context.Context, q CopiesQuery) (Claims, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := Claims{UIDs: map[uint32]bool{}}
	for account, es := range l.entries {
		// Every account writes into one destination user's mailbox here.
		if q.Account != 0 && account != q.Account || q.Account == 0 && account == q.OthersOf {
			continue
		}
		for _, e := range es {
			if e.DestMailbox != q.Mailbox || q.Digest != "" && e.Digest != q.Digest {
				continue
			}
			present := q.OthersOf != 0 && e.State == StateSkipped && e.ReasonClass == ReasonPresent
			switch {
			case present:
				if e.DestUIDValidity == q.UIDValidity && e.DestUID != 0 && slices.Contains(q.UIDs, e.DestUID) {
					out.UIDs[e.DestUID] = true
				}
			case e.State == StateDone, e.State == StateGone, e.State == StateRemoving, e.State == StateMoving:
				if e.DestUID == 0 && e.State == StateDone && q.Digest != "" {
					out.NoUID = true
				}
				if e.DestUIDValidity == q.UIDValidity && e.DestUID != 0 && slices.Contains(q.UIDs, e.DestUID) {
					out.UIDs[e.DestUID] = true
				}
			case e.State == StatePending:
				if q.Digest == "" {
					continue
				}
				from := uint32(1)
				if e.DestUIDValidity == q.UIDValidity && e.DestUIDNext > 0 {
					from = e.DestUIDNext
				}
				if out.PendingFrom == 0 || from < out.PendingFrom {
					out.PendingFrom = from
				}
			}
		}
	}
	return out, nil
}

func (l *memLedger) Counts(_ context.Context, account AccountID) (Counts, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := Counts{}
	for _, e := range l.entries[account] {
		if strings.HasPrefix(e.Key, LateCopyKeyPrefix) {
			continue
		}
		c := out[e.State]
		c.Messages++
		c.Bytes += e.Size
		out[e.State] = c
	}
	return out, nil
}

func (l *memLedger) Folders(_ context.Context, account AccountID) ([]Folder, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Folder
	for _, bySide := range l.folders[account] {
		for _, f := range bySide {
			out = append(out, f)
		}
	}
	return out, nil
}

func (l *memLedger) Resent(_ context.Context, account AccountID) ([]Resent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.resent[account]), nil
}

func (l *memLedger) Usage(_ context.Context, account AccountID, window time.Time) (Usage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usage[account][window], nil
}

// contest is the checkpoint's check of Changes.Take and Changes.Adopt:
// every account writes into one destination user's mailbox here.
func (l *memLedger) contest(account AccountID, take, adopt []Entry) error {
	var refused []string
	for i, list := range [][]Entry{take, adopt} {
		for _, e := range list {
			if e.DestUID == 0 {
				continue
			}
			for other, es := range l.entries {
				if other == account {
					continue
				}
				for _, o := range es {
					if o.DestMailbox != e.DestMailbox || o.DestUIDValidity != e.DestUIDValidity || o.DestUID != e.DestUID {
						continue
					}
					present := o.State == StateSkipped && o.ReasonClass == ReasonPresent
					if o.State == StateRemoving || o.State == StateMoving || i == 0 && (o.State == StateDone || o.State == StateGone || present) {
						refused = append(refused, e.Key)
					}
				}
			}
		}
	}
	if len(refused) > 0 {
		return &ContestedError{Keys: refused}
	}
	return nil
}

func (l *memLedger) Commit(_ context.Context, account AccountID, c Changes) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.commits++
	if l.failCommit > 0 && l.commits == l.failCommit {
		return errors.New("disk full")
	}
	if l.beforeCommit != nil {
		if err := l.beforeCommit(c); err != nil {
			return err
		}
	}
	if l.entries[account] == nil {
		l.entries[account] = map[string]Entry{}
	}
	if err := l.contest(account, c.Take, c.Adopt); err != nil {
		return err
	}
	c.Put = slices.Concat(c.Put, c.Take, c.Adopt)
	es := l.entries[account]
	for _, k := range c.Delete {
		delete(es, k)
	}
	for _, e := range c.Put {
		if !e.State.Valid() || e.Key == "" {
			return fmt.Errorf("invalid entry %+v", e)
		}
		if old, ok := es[e.Key]; ok && !old.DoneAt.IsZero() && e.State == StateDone {
			e.DoneAt = old.DoneAt // the first time it was done
		}
		if e.State == StateDone && e.DoneAt.IsZero() {
			e.DoneAt = e.Updated
		}
		es[e.Key] = e
	}
	for _, r := range c.Resent {
		l.lastID++
		r.ID = l.lastID
		l.resent[account] = append(l.resent[account], r)
	}
	l.resent[account] = slices.DeleteFunc(l.resent[account], func(r Resent) bool { return slices.Contains(c.DropResent, r.ID) })
	for _, f := range c.Folders {
		if l.folders[account] == nil {
			l.folders[account] = map[Side]map[string]Folder{}
		}
		if l.folders[account][f.Side] == nil {
			l.folders[account][f.Side] = map[string]Folder{}
		}
		l.folders[account][f.Side][f.Name] = f
	}
	for _, name := range c.DropFolders {
		delete(l.folders[account][SourceSide], name)
	}
	for _, k := range c.Gone {
		e, ok := es[k]
		switch {
		case !ok:
		case e.State == StateDone:
			e.State, e.GoneAt = StateGone, time.Now()
			es[k] = e
		case e.State == StateSkipped || e.State == StateFailed:
			delete(es, k)
		}
	}
	for _, k := range c.Deleting {
		if e, ok := es[k]; ok && e.State == StateDone {
			e.ReasonClass = ReasonDeleted
			es[k] = e
		}
	}
	if c.ConfirmDeleted {
		for k, e := range es {
			if e.State == StateDone && e.ReasonClass == ReasonDeleted {
				e.State, e.GoneAt = StateGone, time.Now()
				es[k] = e
			}
		}
	}
	if c.Usage != (Usage{}) {
		if l.usage[account] == nil {
			l.usage[account] = map[time.Time]Usage{}
		}
		u := l.usage[account][c.Usage.Window]
		u.Window = c.Usage.Window
		u.ReadBytes += c.Usage.ReadBytes
		u.WrittenBytes += c.Usage.WrittenBytes
		l.usage[account][c.Usage.Window] = u
	}
	return nil
}

func (l *memLedger) StartRun(_ context.Context, account AccountID, started time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = append(l.runs, RunRecord{Started: started})
	return int64(len(l.runs)), nil
}

func (l *memLedger) UpdateRun(_ context.Context, id int64, rec RunRecord) error { return nil }

func (l *memLedger) FinishRun(_ context.Context, id int64, rec RunRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec.Started = l.runs[id-1].Started
	l.runs[id-1] = rec
	return nil
}

func (l *memLedger) states(account AccountID) map[State]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[State]int{}
	for _, e := range l.entries[account] {
		out[e.State]++
	}
	return out
}
