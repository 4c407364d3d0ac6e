package pop3src

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// Options configures Open.
type Options struct {
	// Addr is "host:port"; see DialOptions.Addr.
	Addr      string
	TLS       TLSMode
	TLSConfig *tls.Config
	// User is the mailbox to read. With AuthzID set, User is the
	// authentication identity (a master user) and AuthzID the mailbox.
	User    string
	AuthzID string
	// Password is the password, or the OAuth2 bearer token when Auth is
	// AuthXOAuth2 or AuthOAuthBearer.
	Password secret.Value
	// Auth selects the login mechanism; the zero value is AuthDefault.
	Auth AuthMethod
	// PasswordFunc, when set, is called by Open and its value replaces
	// Password: a token source read again for every session, since OAuth2
	// tokens expire during long runs. Its error fails Open as is (it should
	// say what it ran, never a secret).
	PasswordFunc func(ctx context.Context) (secret.Value, error)
	// TokenRejected, when set with PasswordFunc, is called with the token
	// when the server rejects it (a *TokenRejectedError): a token cache
	// drops it, and the login is tried once more on a new connection with
	// PasswordFunc's next value. A server that ends sessions when their
	// token expires, or a token revoked early, then costs one retry, not
	// the account.
	TokenRejected func(rejected secret.Value)
	// AllowPlaintext permits TLSNone and credentials without TLS.
	AllowPlaintext bool
	// IdleTimeout: see DialOptions.IdleTimeout.
	IdleTimeout time.Duration
	// Timeouts: see DialOptions.Timeouts.
	Timeouts dialer.Timeouts
	// Logger receives warnings (duplicate UIDLs, no UIDL); nil discards.
	Logger *slog.Logger
	// Trace receives the protocol trace, credentials redacted.
	Trace io.Writer
	// PrefetchMessages bounds how many RETRs Prefetch keeps in flight: 0
	// means DefaultPrefetchMessages, negative turns prefetching off.
	PrefetchMessages int
	// PrefetchBytes bounds the announced size of the messages in flight
	// (the one being read always goes out): 0 means DefaultPrefetchBytes.
	PrefetchBytes int64
	// OnClose, when set, is called exactly once, by the first Close, after
	// the session's connection is closed (whatever Close returns). Open
	// never calls it: when Open fails there is no session. A caller that
	// caps connections gives its slot back here.
	OnClose func()
}

// Defaults for Options.PrefetchMessages and Options.PrefetchBytes. At a
// 40 ms round trip, 512 small messages in flight allow about 12,000
// messages/s, and 8 MiB about 200 MB/s; a Fetch out of order discards at
// most that much. The replies wait in the kernel's and the server's
// buffers, not in ours. (With 128, the bench's 40 ms copy of 5,000 small
// messages ran at 0.48 × its loopback speed; with 512, 0.57.)
const (
	DefaultPrefetchMessages = 512
	DefaultPrefetchBytes    = 8 << 20
)

// Source is a POP3 maildrop as a pipeline.Source. Message numbers stay
// inside: keys are UIDLs, or content digests on a server without UIDL.
// Its methods may be called from one goroutine at a time; a mutex guards
// them anyway.
type Source struct {
	mu     sync.Mutex
	c      *Client
	log    *slog.Logger
	server string
	user   string // the mailbox, for messages
	// onClose is Options.OnClose until Close has called it.
	onClose func()

	// The last listing, of which no copy of the whole is kept in memory
	// (issue 20: flat memory): numbers run up to maxNum; special holds the keys that
	// are not the message's UIDL (shared UIDLs, no UIDL); page maps the
	// keys of the page being handed over to their numbers; all maps every
	// key when the server can only be listed at once (no PIPELINING, no
	// UIDL). A number whose key none of them vouch for is checked with
	// UIDL n before it is fetched or deleted.
	listed  bool
	maxNum  int
	special map[int]string
	page    map[string]int
	all     map[string]int
	deleted []uint64 // bit n: marked with DELE this session
	// spilled is the listing ListSummary made, for the List that follows.
	spilled *listing

	// Prefetch state (RFC 2449 §6.6): plan is the order Prefetch announced;
	// plan[pos] is the Fetch expected next; the RETRs for plan[pos:sent]
	// are in flight, their replies unread.
	// pipelining: the last CAPA lists PIPELINING; from the first listing
	// on, the CAPA after login.
	pipelining    bool
	utf8Mode      bool // UTF8 sent (RFC 6856): messages are served as stored
	maxAhead      int  // 0: prefetching off
	maxAheadBytes int64
	plan          []planned
	planIndex     map[string]int // key -> index in plan
	pos, sent     int
}

// planned is one message of a Prefetch plan.
type planned struct {
	key  string
	num  int
	size int64
}

var _ pipeline.Source = (*Source)(nil)

// Open dials, secures and authenticates a session. Authentication uses
// USER/PASS, or SASL PLAIN when AuthzID is set or when the server offers
// PLAIN but not USER (RFC 2449 §6.2). An authentication failure names the
// user and server (never the password) and is fatal for the engine.
func Open(ctx context.Context, opts Options) (*Source, error) {
	if opts.PasswordFunc == nil {
		return openOnce(ctx, opts)
	}
	// A rejected token: see Options.TokenRejected.
	return bearer.WithFreshToken(ctx, opts.User+" for "+opts.Addr, opts.PasswordFunc, opts.TokenRejected, func(pw secret.Value) (*Source, error) {
		once := opts
		once.Password, once.PasswordFunc = pw, nil
		return openOnce(ctx, once)
	})
}

// openOnce is Open with the password in opts.
func openOnce(ctx context.Context, opts Options) (*Source, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mailbox := opts.User
	if opts.AuthzID != "" {
		mailbox = opts.AuthzID
	}
	c, err := Dial(ctx, DialOptions{
		Addr:           opts.Addr,
		TLS:            opts.TLS,
		TLSConfig:      opts.TLSConfig,
		AllowPlaintext: opts.AllowPlaintext,
		IdleTimeout:    opts.IdleTimeout,
		Timeouts:       opts.Timeouts,
		Logger:         log,
		Trace:          opts.Trace,
	})
	if err != nil {
		return nil, err
	}
	s := &Source{c: c, log: log.With("server", opts.Addr, "user", mailbox), server: opts.Addr, user: mailbox,
		onClose: opts.OnClose}
	s.setPrefetchLimits(opts.PrefetchMessages, opts.PrefetchBytes)
	if err := s.login(ctx, opts); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("logging in to %s as %q: %w", opts.Addr, opts.User, err)
	}
	return s, nil
}

func (s *Source) login(ctx context.Context, opts Options) error {
	// RFC 2449 §5: CAPA is optional; a -ERR just means "unknown".
	caps, err := s.c.Capa(ctx)
	var re *ResponseError
	if err != nil && !errors.As(err, &re) {
		return err
	}
	s.pipelining = caps.Has("PIPELINING")
	if err := s.utf8(ctx, caps); err != nil {
		return err
	}
	switch opts.Auth {
	case AuthDefault, AuthPlain:
	case AuthXOAuth2, AuthOAuthBearer:
		if opts.AuthzID != "" {
			return newFatal(fmt.Sprintf("pop3src: %v login cannot act for another user (AuthzID %q)", opts.Auth, opts.AuthzID))
		}
		mech := strings.ToUpper(opts.Auth.String())
		if caps != nil && caps.Has("SASL") && !caps.HasSASL(mech) {
			return newFatal(fmt.Sprintf("pop3src: server does not offer SASL %s", mech))
		}
		if opts.Auth == AuthXOAuth2 {
			return s.c.AuthXOAuth2(ctx, opts.User, opts.Password)
		}
		return s.c.AuthOAuthBearer(ctx, opts.User, opts.Password)
	default:
		return newFatal(fmt.Sprintf("pop3src: unknown auth method %v", opts.Auth))
	}
	usePlain := opts.Auth == AuthPlain || opts.AuthzID != "" || (caps != nil && !caps.Has("USER") && caps.HasSASL("PLAIN"))
	if usePlain {
		return s.c.AuthPlain(ctx, opts.AuthzID, opts.User, opts.Password)
	}
	// APOP (RFC 1939 §7) where the server offers it and not USER: in its
	// CAPA, or by refusing USER (servers without CAPA).
	if caps != nil && !caps.Has("USER") && s.c.OffersAPOP() {
		s.log.Info("the server offers APOP, not USER: logging in with APOP")
		return s.c.Apop(ctx, opts.User, opts.Password)
	}
	if caps.Has("PIPELINING") && caps.Has("USER") {
		// USER and PASS in one round trip (RFC 2449 §6.6).
		err = s.c.LoginPipelined(ctx, opts.User, opts.Password)
	} else {
		err = s.c.Login(ctx, opts.User, opts.Password)
	}
	if errors.As(err, &re) && commandName(re.Command) == "USER" && s.c.Usable() && s.c.OffersAPOP() {
		s.log.Info("the server refused USER; logging in with APOP", "reply", re.reply())
		return s.c.Apop(ctx, opts.User, opts.Password)
	}
	return err
}

// capaUIDL asks CAPA after login (RFC 2449 §5: capabilities may change
// after login) and reports whether UIDL may work: a server without CAPA is
// asked UIDL anyway and may answer -ERR.
func (s *Source) capaUIDL(ctx context.Context) (bool, error) {
	caps, err := s.c.Capa(ctx)
	s.pipelining = err == nil && caps.Has("PIPELINING")
	if uerr := s.utf8(ctx, caps); uerr != nil {
		return false, uerr
	}
	var re *ResponseError
	switch {
	case err == nil && !caps.Has("UIDL"):
		return false, nil
	case err != nil && !errors.As(err, &re):
		return false, err
	}
	return true, nil
}

// List hands the maildrop's messages to page in server order, keyed by
// UIDL, ListPage at a time, with Seq set to the message number.
//
// It keeps no copy of the listing in memory (issue 20): one UIDL and one
// LIST are streamed into a temporary file, then handed over a page at a
// time (listing.go); after ListSummary only the LIST is left to send. A
// server without UIDL, or one that lists out of number order, is listed
// at once into memory instead.
//
// Shared UIDLs (a broken server): every message sharing one gets the key
// "<uidl>#sha256:<hex>" from its content, so a key does not move to another
// message when one of them is deleted; identical copies are told apart by
// "#2", "#3"... in message order. Without UIDL every message is downloaded
// once and keyed "sha256:<hex>", with the same suffixes.
func (s *Source) List(ctx context.Context, page func([]pipeline.SourceMessage) error) error {
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	l, uidl, err := s.prepare(ctx, false, true)
	if err != nil {
		return err
	}
	s.spilled = nil
	defer l.close()
	if l != nil {
		switch err := s.sizes(ctx, l); {
		case errors.Is(err, errUnordered):
			s.log.Warn("server lists messages out of order: listing the maildrop into memory", "user", s.user)
			l.close()
			l, s.maxNum, s.special = nil, 0, nil
		case err != nil:
			return fmt.Errorf("listing the sizes of %s at %s: %w", s.user, s.server, err)
		}
	}
	hand := func(msgs []pipeline.SourceMessage) error {
		pg := make(map[string]int, len(msgs))
		for _, m := range msgs {
			pg[m.Key] = int(m.Seq)
		}
		s.page = pg
		s.mu.Unlock()
		locked = false
		err := page(msgs)
		s.mu.Lock()
		locked = true
		return err
	}
	s.listed = true
	if l == nil {
		msgs, err := s.listAtOnce(ctx, uidl)
		if err != nil {
			return fmt.Errorf("listing %s at %s: %w", s.user, s.server, err)
		}
		for chunk := range slices.Chunk(msgs, pipeline.ListPage) {
			if err := hand(chunk); err != nil {
				return err
			}
		}
		return nil
	}
	var handErr error
	msgs := make([]pipeline.SourceMessage, 0, pipeline.ListPage)
	err = l.each(func(m pipeline.SourceMessage) error {
		msgs = append(msgs, m)
		if len(msgs) < pipeline.ListPage {
			return nil
		}
		handErr = hand(msgs)
		msgs = make([]pipeline.SourceMessage, 0, pipeline.ListPage)
		return handErr
	}, s.special)
	if handErr != nil {
		return handErr
	}
	if err != nil {
		return fmt.Errorf("listing %s at %s: %w", s.user, s.server, err)
	}
	if len(msgs) > 0 {
		return hand(msgs)
	}
	return nil
}

// ListSummary lists the maildrop's UIDLs (List then hands over this
// listing, if nothing else is asked of the session meanwhile, and asks
// for the sizes) and tells its size and digest: the UIDLs in order, and
// the keys made from content. Not the sizes: a message keeps its UIDL for
// good (RFC 1939 §7), the engine decides by key what a listed message
// with an entry needs, and Dovecot, the server of the largest maildrops
// here, spends some of a no-op re-run answering LIST (issue 20). A server
// without UIDL, or listing out of order, has none (false).
//
// With thenList (the caller lists next whatever the summary says: a first
// run, say) and a server that announced PIPELINING, the LIST goes out with
// the UIDL, in one write: the sizes then cost no round trip of their own.
func (s *Source) ListSummary(ctx context.Context, thenList bool) (pipeline.ListSummary, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, _, err := s.prepare(ctx, true, thenList)
	if err != nil || l == nil {
		return pipeline.ListSummary{}, false, err
	}
	s.spilled = l
	return l.summary, true, nil
}

// prepare starts a listing: the one ListSummary just made (when reuse
// and nothing came between), or a new spill. It returns nil and whether
// the server has UIDL when the maildrop must be listed at once. With
// sizes (List follows) and PIPELINING, the LIST goes out with the UIDL.
func (s *Source) prepare(ctx context.Context, summary, sizes bool) (*listing, bool, error) {
	if l := s.spilled; l != nil && !summary {
		return l, true, nil
	}
	s.spilled.close()
	s.spilled = nil
	s.resetPlan() // the Client discards replies still in flight
	// s.deleted stays: the server keeps what DELE marked for the session.
	s.listed, s.maxNum, s.special, s.page, s.all = false, 0, nil, nil, nil
	if s.pipelining {
		// The CAPA after login (RFC 2449 §5: capabilities may change at
		// login), the UIDL listing and, when List follows, the LIST in
		// one round trip (RFC 2449 §6.6). If that CAPA says the UIDL is
		// not to be used, or calls for UTF8 first, the replies are
		// discarded and the commands sent again as needed.
		cmds := []string{"CAPA", "UIDL"}
		if sizes {
			cmds = append(cmds, "LIST")
		}
		if err := s.c.sendAhead(ctx, cmds...); err != nil {
			return nil, false, fmt.Errorf("listing UIDLs of %s at %s: %w", s.user, s.server, err)
		}
	}
	uidl, err := s.capaUIDL(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("listing UIDLs of %s at %s: %w", s.user, s.server, err)
	}
	if !uidl {
		return nil, false, nil
	}
	l, uidl, err := s.spill(ctx)
	switch {
	case errors.Is(err, errUnordered):
		s.log.Warn("server lists messages out of order: listing the maildrop into memory", "user", s.user)
		s.maxNum, s.special = 0, nil
		return nil, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("listing %s at %s: %w", s.user, s.server, err)
	}
	return l, uidl, nil
}

// listAtOnce lists the maildrop into memory with one LIST and one UIDL,
// for servers that cannot be asked page by page (no PIPELINING) or have
// no UIDL (every message downloaded once to key it by content).
func (s *Source) listAtOnce(ctx context.Context, uidl bool) ([]pipeline.SourceMessage, error) {
	sizes, err := s.c.List(ctx)
	if err != nil {
		return nil, err
	}
	keys := make(map[int]string, len(sizes))
	if uidl {
		uids, err := s.c.UIDL(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing UIDLs: %w", err)
		}
		uidOf := make(map[int]string, len(uids))
		byUID := make(map[string][]int, len(uids))
		for _, u := range uids {
			uidOf[u.Number] = u.UID
			byUID[u.UID] = append(byUID[u.UID], u.Number)
		}
		var shared []string
		for uid, nums := range byUID {
			if len(nums) > 1 {
				shared = append(shared, uid)
			}
		}
		sort.Strings(shared)
		for _, uid := range shared {
			if s.special == nil {
				s.special = map[int]string{}
			}
			nums := byUID[uid]
			s.log.Warn("server reports the same UIDL for several messages: keying them by UIDL and content digest", "uidl", uid, "messages", len(nums))
			if err := s.keysFromDigest(ctx, nums, uid+"#", sizeIn(sizes), s.special); err != nil {
				return nil, err
			}
		}
		// Every listed message needs a UIDL, or it would have no identity.
		for _, m := range sizes {
			uid, ok := uidOf[m.Number]
			if !ok {
				return nil, &ProtocolError{Command: "UIDL", Reason: fmt.Sprintf("no unique-id for message %d", m.Number)}
			}
			if k, ok := s.special[m.Number]; ok {
				uid = k
			}
			keys[m.Number] = uid
		}
	} else {
		s.log.Warn("server has no UIDL: keying messages by content digest, downloading each once to list it", "messages", len(sizes))
		nums := make([]int, len(sizes))
		for i, m := range sizes {
			nums[i] = m.Number
		}
		if err := s.keysFromDigest(ctx, nums, "", sizeIn(sizes), keys); err != nil {
			return nil, err
		}
	}
	out := make([]pipeline.SourceMessage, 0, len(sizes))
	s.all = make(map[string]int, len(sizes))
	for _, m := range sizes {
		out = append(out, pipeline.SourceMessage{Key: keys[m.Number], Size: m.Size, Seq: uint32(m.Number)})
		s.all[keys[m.Number]] = m.Number
		s.maxNum = max(s.maxNum, m.Number)
	}
	return out, nil
}

// keysFromDigest downloads the messages nums and keys each
// prefix+"sha256:<hex>", adding "#2", "#3"... to identical ones in order.
// A suffixed key that collides with a key already in keys is skipped past,
// so keys stay unique. sizeOf gives the listed size of a message the
// server refuses to serve (its key then).
func (s *Source) keysFromDigest(ctx context.Context, nums []int, prefix string, sizeOf func(int) (int64, error), keys map[int]string) error {
	taken := make(map[string]bool, len(keys))
	for _, k := range keys {
		taken[k] = true
	}
	for _, n := range nums {
		h := sha256.New()
		base := ""
		if _, err := s.c.Retr(ctx, n, h); isRefusal(err) {
			// A message the server will not serve has no content to key
			// it by: its announced size stands in, so that it is listed,
			// fails on its own (Fetch) and is tried again by the next
			// run, and the messages after it are copied.
			s.log.Warn("the server refused to serve a message; keying it by its size", "message", n, "error", err)
			size, serr := sizeOf(n)
			if serr != nil {
				return fmt.Errorf("listing the size of message %d: %w", n, serr)
			}
			base = prefix + "unreadable:" + strconv.FormatInt(size, 10)
		} else if err != nil {
			return fmt.Errorf("digesting message %d: %w", n, err)
		} else {
			base = prefix + "sha256:" + hex.EncodeToString(h.Sum(nil))
		}
		key := base
		for i := 2; taken[key]; i++ {
			key = base + "#" + strconv.Itoa(i)
		}
		taken[key] = true
		keys[n] = key
	}
	return nil
}

// number returns the message number of msg, which must come from this
// session's last listing, and whether that is certain without asking the
// server: the number is the key's by the page being handed over, the
// whole listing (listed at once), or a key made from the content. A
// number only msg.Seq gives is to be checked with UIDL n.
func (s *Source) number(op string, msg pipeline.SourceMessage) (n int, sure bool, err error) {
	if !s.listed {
		return 0, false, fmt.Errorf("pop3src: %s %q: List was not called in this session", op, msg.Key)
	}
	if n, ok := s.page[msg.Key]; ok && (msg.Seq == 0 || int(msg.Seq) == n) {
		return n, true, nil
	}
	if s.all != nil {
		if n, ok := s.all[msg.Key]; ok && (msg.Seq == 0 || int(msg.Seq) == n) {
			return n, true, nil
		}
		return 0, false, fmt.Errorf("%s %q: %w", op, msg.Key, ErrUnknownKey)
	}
	n = int(msg.Seq)
	if n <= 0 || n > s.maxNum {
		return 0, false, fmt.Errorf("%s %q: %w", op, msg.Key, ErrUnknownKey)
	}
	if k, ok := s.special[n]; ok {
		if k != msg.Key {
			return 0, false, fmt.Errorf("%s %q: message %d is %q: %w", op, msg.Key, n, k, ErrUnknownKey)
		}
		return n, true, nil
	}
	if _, ok := UIDLOfKey(msg.Key); !ok || strings.Contains(msg.Key, "#sha256:") {
		return 0, false, fmt.Errorf("%s %q: %w", op, msg.Key, ErrUnknownKey)
	}
	return n, false, nil
}

// Fetch writes the exact bytes of msg, which must come from this session's
// List, to w.
//
// After Prefetch, a Fetch of the next announced message reads the reply to
// a RETR already in flight and first tops the window up. A Fetch of a
// message announced further on discards the replies in flight (the skipped
// messages are dropped from the plan) and goes on from there. A Fetch of a
// message not in the rest of the plan discards the replies in flight too,
// then sends a plain RETR; the plan goes on at the next announced message.
// Discarding reads each prefetched message to its end, so the session stays
// in step; it costs at most the prefetch window.
func (s *Source) Fetch(ctx context.Context, msg pipeline.SourceMessage, w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	written, err := s.fetch(ctx, msg, w)
	if err != nil {
		written, err = s.refusedRetr(ctx, msg, w, written, err)
	}
	if err != nil {
		return written, fmt.Errorf("fetching %q from %s at %s: %w", msg.Key, s.user, s.server, err)
	}
	return written, nil
}

func (s *Source) fetch(ctx context.Context, msg pipeline.SourceMessage, w io.Writer) (int64, error) {
	if s.c.Pending() != s.sent-s.pos {
		// Another command drained the replies in flight, or Prefetch
		// replaced the plan while some were: start the window afresh.
		if err := s.c.DiscardPending(ctx); err != nil {
			return 0, fmt.Errorf("discarding prefetched messages: %w", err)
		}
		s.sent = s.pos
	}
	j, ok := s.planIndex[msg.Key]
	if !ok || j < s.pos {
		n, sure, err := s.number("fetching", msg)
		if err != nil {
			return 0, err
		}
		s.sent = s.pos // Retr discards the replies in flight
		if !sure && s.pipelining {
			return s.c.RetrIfUID(ctx, n, msg.Key, w)
		}
		return s.c.Retr(ctx, n, w)
	}
	if j > s.pos {
		s.log.Debug("fetch skips announced messages: discarding prefetched replies", "skipped", j-s.pos, "in_flight", s.sent-s.pos)
		if err := s.c.DiscardPending(ctx); err != nil {
			return 0, fmt.Errorf("discarding prefetched messages: %w", err)
		}
		s.pos, s.sent = j, j
	}
	p := s.plan[j]
	if err := s.fill(ctx); err != nil {
		return 0, err
	}
	s.pos = j + 1
	return s.c.ReadRetr(ctx, p.num, w)
}

// fill sends RETRs for the plan after the ones in flight while the window
// allows: at most maxAhead messages and maxAheadBytes announced bytes in
// flight, counting from plan[pos]; plan[pos] itself always goes. While
// RETRs are in flight it waits until a quarter of the window is free, in
// messages and in bytes, and then fills it: one write (one TLS record, one
// system call, one wake-up of the server) per quarter window, not per
// message.
func (s *Source) fill(ctx context.Context) error {
	var inFlight int64
	for _, p := range s.plan[s.pos:s.sent] {
		inFlight += p.size
	}
	if n := s.sent - s.pos; n > 0 && (s.maxAhead-n < max(1, s.maxAhead/4) || s.maxAheadBytes-inFlight < s.maxAheadBytes/4) {
		return nil
	}
	var nums []int
	for s.sent < len(s.plan) && s.sent-s.pos < s.maxAhead && (s.sent == s.pos || inFlight+s.plan[s.sent].size <= s.maxAheadBytes) {
		nums = append(nums, s.plan[s.sent].num)
		inFlight += s.plan[s.sent].size
		s.sent++
	}
	return s.c.SendRetr(ctx, nums...)
}

// Prefetch announces that the next Fetch calls ask for exactly msgs, in this
// order: it makes Fetch keep up to Options.PrefetchMessages RETRs (and
// Options.PrefetchBytes announced bytes) in flight, so that round trips
// overlap (RFC 2449 §6.6 PIPELINING). It sends nothing itself: the first
// Fetch does. It replaces any earlier plan and discards its replies still in
// flight at the next command.
//
// Prefetch is a no-op when the server does not announce PIPELINING in CAPA
// after login, or prefetching is off. Keys the last List did not return are
// left out of the plan (their Fetch fails with ErrUnknownKey, as ever), and
// so is a key's second appearance. Fetch calls out of the announced order
// are served correctly, only more slowly: see Fetch. Prefetch fails only
// when List was not called in this session.
func (s *Source) Prefetch(ctx context.Context, msgs []pipeline.SourceMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listed {
		return errors.New("pop3src: prefetching: List was not called in this session")
	}
	s.resetPlan()
	if !s.pipelining || s.maxAhead == 0 {
		return nil
	}
	s.plan = make([]planned, 0, len(msgs))
	s.planIndex = make(map[string]int, len(msgs))
	for _, m := range msgs {
		n, sure, err := s.number("prefetching", m)
		if _, dup := s.planIndex[m.Key]; err != nil || !sure || dup {
			continue // its Fetch says what is wrong, or checks it
		}
		s.planIndex[m.Key] = len(s.plan)
		s.plan = append(s.plan, planned{key: m.Key, num: n, size: m.Size})
	}
	return nil
}

// resetPlan forgets the Prefetch plan. Replies still in flight are
// discarded by the Client before its next command.
func (s *Source) resetPlan() {
	s.plan, s.planIndex = nil, nil
	s.pos, s.sent = 0, 0
}

func (s *Source) setPrefetchLimits(messages int, bytes int64) {
	switch {
	case messages < 0:
		s.maxAhead = 0
	case messages == 0:
		s.maxAhead = DefaultPrefetchMessages
	default:
		s.maxAhead = messages
	}
	s.maxAheadBytes = bytes
	if bytes <= 0 {
		s.maxAheadBytes = DefaultPrefetchBytes
	}
}

// Delete marks msgs deleted. Nothing is removed until Close(true) sends
// QUIT (RFC 1939 §6). Every message must come from this session's last
// listing: a message number not vouched for by the listing in memory is
// checked with UIDL n first, and unknown keys or numbers that now hold
// another message fail before anything is marked. With PIPELINING the
// DELEs go out pipelined.
func (s *Source) Delete(ctx context.Context, msgs []pipeline.SourceMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	nums := make([]int, 0, len(msgs))
	var check []int
	var checkKeys []string
	for _, m := range msgs {
		n, sure, err := s.number("deleting", m)
		if err != nil {
			return err
		}
		if !sure {
			check = append(check, n)
			checkKeys = append(checkKeys, m.Key)
		}
		nums = append(nums, n)
	}
	if len(check) > 0 {
		infos, err := s.c.Infos(ctx, check, false, true)
		if err != nil {
			return fmt.Errorf("checking %d messages before deleting them from %s at %s: %w", len(check), s.user, s.server, err)
		}
		for i, in := range infos {
			if !in.Exists || in.UID != checkKeys[i] {
				return fmt.Errorf("deleting %q: message %d is not it: %w", checkKeys[i], in.Number, ErrUnknownKey)
			}
		}
	}
	if s.deleted == nil {
		s.deleted = make([]uint64, s.maxNum/64+1)
	}
	todo := make([]int, 0, len(nums))
	for _, n := range nums {
		if !s.isDeleted(n) {
			todo = append(todo, n)
			s.markDeleted(n) // a number twice in msgs goes out once
		}
	}
	var err error
	if s.pipelining {
		err = s.c.DeleMany(ctx, todo)
	} else {
		for _, n := range todo {
			if err = s.c.Dele(ctx, n); err != nil {
				break
			}
		}
	}
	if err != nil {
		// Which were marked is not known for sure: the caller must not
		// QUIT (the pipeline closes without it after an error).
		return fmt.Errorf("deleting %d messages from %s at %s: %w", len(todo), s.user, s.server, err)
	}
	return nil
}

func (s *Source) isDeleted(n int) bool {
	return n/64 < len(s.deleted) && s.deleted[n/64]&(1<<(n%64)) != 0
}

func (s *Source) markDeleted(n int) {
	for n/64 >= len(s.deleted) {
		s.deleted = append(s.deleted, 0)
	}
	s.deleted[n/64] |= 1 << (n % 64)
}

// Close ends the session. With commit it sends QUIT, which removes the
// messages marked by Delete; an error then means some may remain (or, if
// the connection failed, that it is unknown). Without commit it closes the
// connection without QUIT and nothing is removed.
func (s *Source) Close(commit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.onClose; f != nil {
		s.onClose = nil
		defer f() // after the connection is closed, below
	}
	s.spilled.close()
	s.spilled = nil
	if !commit {
		return s.c.Close()
	}
	// QUIT is bounded by the idle timeout, not by a context: Close has none.
	if err := s.c.Quit(context.Background()); err != nil {
		return fmt.Errorf("committing deletions in %s at %s: %w", s.user, s.server, err)
	}
	return nil
}
