package account

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/connlimit"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/spool"
	"github.com/mailferry/mailferry/traffic"
)

// Options are what the command line says for every account of a Set.
type Options struct {
	Logger *slog.Logger // nil discards
	// Trace receives the protocol traces (credentials redacted); nil: none.
	Trace io.Writer
	// TLSCA replaces the servers' tls_ca (--tls-ca); InsecureSkipVerify
	// and AllowPlaintext apply on top of the servers' settings.
	TLSCA              string
	InsecureSkipVerify bool
	AllowPlaintext     bool
	// Delete, when set, replaces every configured account's keep/delete
	// policy (run's --delete-source, --delete-after).
	Delete *config.DeletePolicy
	// Mirror, when set, replaces every configured account's mirror key
	// (--mirror); MaxDelete and MaxDeletePercent, when positive, replace
	// the config's caps (--max-delete, --max-delete-percent).
	Mirror           *bool
	MaxDelete        int
	MaxDeletePercent int
	// MirrorAllowEmpty are folders allowed to be empty added to every
	// account's own (--mirror-allow-empty).
	MirrorAllowEmpty []string
	// CreateFolders, when set, replaces the config's create_folders
	// (run's and plan's --create-folders).
	CreateFolders *bool
	// NoMatchExisting turns destination matching off for every account
	// (--no-match-existing), whatever the config's match_existing says.
	NoMatchExisting bool
	// Limits are the command line's traffic limits: each field set
	// replaces every account's (--bwlimit-read, --max-bytes-per-day…).
	Limits config.Limits
	// MaxConnectionsPerUser, when positive, replaces the servers'
	// max_connections_per_user (--max-connections-per-user).
	MaxConnectionsPerUser int
	// MaxConnectionsTotal, when positive, caps the connections of all the
	// accounts together (max_connections_total).
	MaxConnectionsTotal int
	// Traffic is the run's traffic control: the limits the accounts share,
	// the clock and the zone. Nil: one without run-wide limits.
	Traffic *traffic.Run
	// Crawl is when a destination that slows to a crawl at its daily
	// limit crawls (pipeline.Options.Crawl; zero: the defaults). Only
	// tests change it.
	Crawl pipeline.CrawlRule
}

// Set assembles the accounts of one command: they share the connection
// caps, the master passwords (each read once), the CA files, the warnings
// (each given once) and the spool's buffers. It is safe for concurrent use.
type Set struct {
	opts    Options
	log     *slog.Logger
	limits  connlimit.Limits
	masters masters
	traffic *traffic.Run
	logins  logins
	// buffers are the spool buffers of every account of a config
	// (spool.Buffers is safe for concurrent use): an account of 200
	// messages, one batch, allocated a buffer for each of them when it had
	// Buffers of its own, about 1 MB per account of a fleet.
	buffers *spool.Buffers

	mu    sync.Mutex
	pools map[string]*x509.CertPool
	// checked are the CA files checked for sides without TLS.
	checked map[string]bool
	// sessions are the TLS session caches, one per endpoint
	// (Set.sessionCache).
	sessions map[tlsEndpoint]tls.ClientSessionCache
	warned   map[string]bool
}

// NewSet returns a Set for the command line's options.
func NewSet(opts Options) *Set {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := opts.Traffic
	if tr == nil {
		tr = traffic.NewRun(traffic.Options{Logger: log})
	}
	return &Set{opts: opts, log: log, traffic: tr, buffers: &spool.Buffers{}}
}

// ShareCaps makes the connection caps of the Set's accounts hold across
// a fleet of processes (a PostgreSQL ledger's Slots): each session takes
// the fleet's slots of its capped keys before it dials, besides this
// process's, and gives them back when it closes. Call it before the first
// session opens.
func (s *Set) ShareCaps(f connlimit.Fleet) { s.limits.ShareWith(f) }

// warnOnce logs msg the first time key is seen.
func (s *Set) warnOnce(key, msg string, args ...any) {
	s.mu.Lock()
	seen := s.warned[key]
	if s.warned == nil {
		s.warned = map[string]bool{}
	}
	s.warned[key] = true
	s.mu.Unlock()
	if !seen {
		s.log.Warn(msg, args...)
	}
}

// Account is one mailbox to move, ready to run.
type Account struct {
	// Name is how people know the account: the config's account name, or
	// the two URLs as given ("pop3s://alice@old:995 -> imaps://alice@new");
	// Options.Label too. The ledger key is Options.Name.
	Name string
	// ID is the config's id: the account's name in the ledger whatever its
	// servers are called; "" when none.
	ID string
	// Options are the copy's pipeline options: Options.Name is the ledger
	// key (Key), Options.Account the ledger's number, which the command
	// sets once it resolved the account in its ledger (LedgerSpec). A
	// command may set its test hooks (Crashpoint, Now) before calling Job.
	Options pipeline.Options
	// Folders select and place the folders of an IMAP source: the
	// config's [folders] or the command's flags, Root being where they go.
	Folders config.Folders
	// CreateFolders lets the copy create a new top-level destination
	// folder the user named (--create-folders, create_folders); see
	// CheckFolders.
	CreateFolders bool
	Source        config.Endpoint
	Dest          config.Endpoint
	src, dst      *side
	set           *Set
	sourceIMAP    bool
	fromURLs      bool // the ledger knows it by its key only (LedgerSpec)
	named         namedFolders
	notes         *notes
}

// spec is what an account is made of, from a config or from URLs.
type spec struct {
	name     string // the config's name, or the URLs as given
	urls     bool   // from URLs: the ledger knows it by its key only
	id       string // the config's id; "" for URLs and when none
	src, dst sideSpec
	opts     pipeline.Options // the policies, batching and spool
	folders  config.Folders
	xUIDL    bool
	// Where the user named folders, for errors: the source URL's path,
	// the include patterns, the destination folder (e.g. "SOURCE's
	// folder", "--folder", "DEST's folder"; "source.url",
	// "folders.include", "dest_folder").
	srcFolderFrom, includeFrom, destFolderFrom string
	createFolders                              bool
	limits                                     config.Limits // traffic limits (the config's; the flags go over them)
}

// assemble builds the account of sp: the one place where an account's
// rules are put together, for the config and for URLs alike.
func (s *Set) assemble(sp spec) (*Account, error) {
	if sp.dst.ep.Protocol != config.IMAP {
		return nil, fmt.Errorf("destination %s: must be an imaps:// or imap:// URL", sp.dst.ep)
	}
	a := &Account{Name: sp.name, ID: sp.id, Options: sp.opts, Folders: sp.folders, Source: sp.src.ep, Dest: sp.dst.ep, set: s,
		sourceIMAP: sp.src.ep.Protocol == config.IMAP, CreateFolders: sp.createFolders, fromURLs: sp.urls}
	a.Options.Name = Key(sp.src.ep, sp.dst.ep)
	a.Options.Mailbox = mapping.DestFolder(sp.dst.ep.Mailbox)
	if a.Name == "" {
		a.Name = a.Options.Name
	}
	a.Options.Label = a.Name
	if a.sourceIMAP {
		// The destination's path is where the source's folders go: under
		// it, or (none) at the top, mapped folder by folder.
		a.Folders.Root = sp.dst.ep.Mailbox
		a.Options.MapFolders = a.mapFolders
		a.Options.SyncFlags = sp.folders.SyncFlags
		a.Options.KeyFolder = imapsrc.KeyFolder
		a.Options.FolderKeys = func(mailbox string) string { return imapsrc.KeyPrefix(mailbox, 0) }
	}
	a.named = namedIn(sp, a.sourceIMAP)
	if sp.xUIDL {
		if sp.src.ep.Protocol != config.POP3 {
			return nil, errors.New("--x-uidl (policy.x_uidl) needs a POP3 source: IMAP messages have no UIDL")
		}
		a.Options.AddHeader = pop3src.XUIDLHeader
	}
	var err error
	if a.src, err = s.side(sp.src); err != nil {
		return nil, err
	}
	if a.dst, err = s.side(sp.dst); err != nil {
		return nil, err
	}
	a.notes = &notes{}
	a.src.quirks = imapconn.NewQuirks(a.src.log.With("server", a.src.ep.Addr()), func(n string) { a.notes.add("source: " + n) })
	a.dst.quirks = imapconn.NewQuirks(a.dst.log.With("server", a.dst.ep.Addr()), func(n string) { a.notes.add("destination: " + n) })
	a.dst.shared = imapdst.NewShared(a.dst.quirks)
	tr, err := s.trafficOf(a.Options.Name, sp.limits, a.src.provider, a.dst.provider)
	if err != nil {
		return nil, err
	}
	a.Options.Traffic = tr
	a.Options.QuotaWindow = s.traffic.Window
	a.Options.Crawl = s.opts.Crawl
	return a, nil
}

// URLs is an account given by two URLs and the command's flags: `mailferry
// copy SOURCE DEST`, and the URL form of verify and plan.
type URLs struct {
	Source, Dest           config.Endpoint
	SourceLogin, DestLogin Login
	// Options are the copy's settings from the flags: DatePolicy,
	// FlagPolicy, MaxMessageBytes, Spool, BatchMessages, BatchBytes,
	// DestSessions, DeleteSource and DeleteAfter.
	Options pipeline.Options
	// Folders are the flags for an IMAP source (--folder,
	// --exclude-folder, --sync-flags, --special-use, --max-age,
	// --min-age); the folders go under DEST's path.
	Folders     config.Folders
	XUIDL       bool
	IdleTimeout time.Duration
	// Timeouts bound the TCP connect, the TLS handshake and the greeting
	// of every connection (--connect-timeout, --tls-timeout,
	// --greeting-timeout); zero fields: 30 s.
	Timeouts dialer.Timeouts
	// CreateFolders lets the copy create DEST's folder when it is a new
	// top-level folder (--create-folders).
	CreateFolders bool
}

// FromURLs assembles the account of two URLs. A POP3 source's mail goes
// to DEST's path, INBOX when it has none.
func (s *Set) FromURLs(u URLs) (*Account, error) {
	if u.Source.User == "" || u.Dest.User == "" {
		return nil, errors.New("both URLs need a user name (pop3s://USER@host, imaps://USER@host)")
	}
	dst := u.Dest
	if u.Source.Protocol == config.POP3 && dst.Mailbox == "" {
		dst.Mailbox = config.DefaultFolder
	}
	side := func(section string, ep config.Endpoint, l Login) sideSpec {
		srv := &config.Server{Auth: ep.Auth, IdleTimeout: u.IdleTimeout,
			ConnectTimeout: u.Timeouts.Connect, TLSTimeout: u.Timeouts.TLS, GreetingTimeout: u.Timeouts.Greeting}
		if l.OAuth2 != nil {
			// The flag's grant, provider and mechanism (xoauth2 unless
			// the URL says oauthbearer).
			c := *l.OAuth2
			c.IdleTimeout = u.IdleTimeout
			c.ConnectTimeout, c.TLSTimeout, c.GreetingTimeout = u.Timeouts.Connect, u.Timeouts.TLS, u.Timeouts.Greeting
			srv, ep.Auth = &c, c.Auth
		}
		return sideSpec{section: section, ep: ep, srv: srv, login: l}
	}
	return s.assemble(spec{name: u.Source.String() + " -> " + u.Dest.String(), urls: true,
		src:  side("source", u.Source, u.SourceLogin),
		dst:  side("destination", dst, u.DestLogin),
		opts: u.Options, folders: u.Folders, xUIDL: u.XUIDL,
		srcFolderFrom: "SOURCE's folder", includeFrom: "--folder", destFolderFrom: "DEST's folder", createFolders: u.CreateFolders,
	})
}

// FromConfig assembles the accounts of cfg named in only (every account
// when only is empty), in the config's order. Their connections share the
// servers' caps: per server, the smallest max_connections that any
// account of cfg gives it.
func (s *Set) FromConfig(cfg *config.Config, only []string) ([]*Account, error) {
	selected, err := Select(cfg, only)
	if err != nil {
		return nil, err
	}
	caps := connectionCaps(cfg)
	if s.opts.MaxConnectionsTotal <= 0 {
		s.opts.MaxConnectionsTotal = cfg.MaxConnectionsTotal
	}
	out := make([]*Account, 0, len(selected))
	for _, a := range selected {
		acc, err := s.fromConfig(cfg, a, caps)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", a.Name, err)
		}
		out = append(out, acc)
	}
	return out, nil
}

func (s *Set) fromConfig(cfg *config.Config, a *config.Account, caps map[string]int) (*Account, error) {
	srcEp, err := cfg.SourceEndpoint(a)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dstEp, err := cfg.DestEndpoint(a)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	var o pipeline.Options
	if o.DatePolicy, err = mapping.ParseDatePolicy(string(cfg.Policy.InternalDate)); err != nil {
		return nil, fmt.Errorf("policy.internal_date: %w", err)
	}
	if o.FlagPolicy, err = mapping.ParseFlagPolicy(string(cfg.Policy.Flags)); err != nil {
		return nil, fmt.Errorf("policy.flags: %w", err)
	}
	o.MaxMessageBytes = cfg.Policy.MaxMessageBytes
	o.Spool = spool.Options{MemoryBytes: cfg.Policy.SpoolMemoryBytes, Buffers: s.buffers}
	srcSrv, dstSrv := cfg.SourceFor(a), cfg.DestinationFor(a)
	o.BatchMessages, o.BatchBytes, o.DestSessions = dstSrv.BatchMessages, dstSrv.BatchBytes, dstSrv.Sessions
	policy := cfg.DeletePolicyOf(a)
	if s.opts.Delete != nil {
		policy = *s.opts.Delete
	}
	o.DeleteSource, o.DeleteAfter = policy.DeleteSource, policy.DeleteAfter
	o.Mirror, o.MaxDelete, o.MaxDeletePercent = cfg.MirrorOf(a), cfg.MaxDelete, cfg.MaxDeletePercent
	if s.opts.Mirror != nil {
		o.Mirror = *s.opts.Mirror
	}
	if s.opts.MaxDelete > 0 || s.opts.MaxDeletePercent > 0 {
		o.MaxDelete, o.MaxDeletePercent = s.opts.MaxDelete, s.opts.MaxDeletePercent
	}
	o.MirrorAllowEmpty = append(slices.Clone(a.MirrorAllowEmpty), s.opts.MirrorAllowEmpty...)
	o.NoMatchExisting = !cfg.MatchExisting
	if s.opts.NoMatchExisting {
		o.NoMatchExisting = true
	}
	createFolders := cfg.CreateFolders
	if s.opts.CreateFolders != nil {
		createFolders = *s.opts.CreateFolders
	}
	return s.assemble(spec{name: a.Name, id: a.ID,
		src: sideSpec{account: a.Name, section: "source", ep: srcEp, srv: &srcSrv.Server, cap: caps[srcEp.Addr()], perUser: srcSrv.MaxConnectionsPerUser,
			login: Login{Secret: a.SourcePassword, What: "source password (" + a.SourcePassword.Key("source_password") + ")"}},
		dst: sideSpec{account: a.Name, section: "destination", ep: dstEp, srv: &dstSrv.Server, cap: caps[dstEp.Addr()], perUser: dstSrv.MaxConnectionsPerUser,
			login: Login{Secret: a.DestPassword, What: "destination password (" + a.DestPassword.Key("dest_password") + ")"}},
		opts: o, folders: cfg.Folders, xUIDL: cfg.Policy.XUIDL, limits: cfg.LimitsOf(a),
		srcFolderFrom: "the source's url", includeFrom: "folders.include", destFolderFrom: cfg.DestFolderKey(a),
		createFolders: createFolders,
	})
}

// Select returns the accounts of cfg named in only, in the config's
// order: every account when only is empty. A name cfg does not have is an
// error.
func Select(cfg *config.Config, only []string) ([]*config.Account, error) {
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	found := map[string]bool{} // not deleted from want: an emptied want would select every later account
	var out []*config.Account
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if len(want) > 0 && !want[a.Name] {
			continue
		}
		found[a.Name] = true
		out = append(out, a)
	}
	for _, n := range only {
		if !found[n] {
			return nil, fmt.Errorf("no account named %q in %s", n, cfg.File)
		}
	}
	return out, nil
}

// Key names an account in the ledger: the source mailbox and where it
// goes. It must not change between runs, so it is built from the servers
// and users only (never a password), the scheme reduced to the protocol so
// that pop3s and pop3+STLS on the same port count as the same mailbox.
func Key(src, dst config.Endpoint) string {
	mb := dst.Mailbox
	if mb == "" && src.Protocol == config.POP3 {
		mb = config.DefaultFolder
	}
	return fmt.Sprintf("%s://%s@%s -> %s://%s@%s/%s", src.Protocol, src.User, src.Addr(),
		dst.Protocol, dst.User, dst.Addr(), mb)
}

// KeyOf is the ledger key of a configured account, without assembling it
// (status reads the ledger and connects to nothing).
func KeyOf(cfg *config.Config, a *config.Account) (string, error) {
	sp, err := SpecOf(cfg, a)
	return sp.Endpoint, err
}

// SpecOf is how the ledger names a configured account (its endpoint key,
// id, name, users), without assembling it.
func SpecOf(cfg *config.Config, a *config.Account) (checkpoint.AccountSpec, error) {
	src, err := cfg.SourceEndpoint(a)
	if err != nil {
		return checkpoint.AccountSpec{}, fmt.Errorf("account %q: source: %w", a.Name, err)
	}
	dst, err := cfg.DestEndpoint(a)
	if err != nil {
		return checkpoint.AccountSpec{}, fmt.Errorf("account %q: destination: %w", a.Name, err)
	}
	return ledgerSpec(a.ID, a.Name, src, dst), nil
}

// LedgerSpec is how the ledger names the account: checkpoint's
// ResolveAccount (or, reading only, LookupAccount) gives its number for
// Options.Account. An account from URLs has no config name: the ledger
// names it by its endpoint key (its Name is the URLs as given).
func (a *Account) LedgerSpec() checkpoint.AccountSpec {
	name := a.Name
	if a.fromURLs || name == a.Options.Name {
		name = ""
	}
	return ledgerSpec(a.ID, name, a.Source, a.Dest)
}

func ledgerSpec(id, name string, src, dst config.Endpoint) checkpoint.AccountSpec {
	mb := dst.Mailbox
	if mb == "" && src.Protocol == config.POP3 {
		mb = config.DefaultFolder
	}
	spec, _ := json.Marshal(struct {
		ID          string `json:"id,omitempty"`
		Name        string `json:"name,omitempty"`
		Source      string `json:"source"`
		Destination string `json:"destination"`
	}{id, name, endpointURL(src, ""), endpointURL(dst, dst.Mailbox)})
	return checkpoint.AccountSpec{
		ID: id, Name: name, Endpoint: Key(src, dst),
		SourceProto: src.Protocol.String(), SourceUser: src.User, DestUser: dst.User, DestFolder: mb,
		Source: endpointURL(src, ""), Destination: endpointURL(dst, ""),
		KeyScheme: src.Protocol.String(), Spec: spec,
	}
}

// endpointURL is an endpoint for display: "pop3://alice@pop.old:995",
// never a secret (the ledger and status show it).
func endpointURL(ep config.Endpoint, folder string) string {
	u := fmt.Sprintf("%s://%s@%s", ep.Protocol, ep.User, ep.Addr())
	if folder != "" {
		u += "/" + folder
	}
	return u
}

// connectionCaps returns, per server address, the smallest positive
// max_connections of the accounts that use it, as a source or as a
// destination: the cap is the server's, and an account's override of the
// host or of the cap must not let the accounts sharing that server exceed
// the strictest setting.
func connectionCaps(cfg *config.Config) map[string]int {
	caps := map[string]int{}
	add := func(addr string, n int) {
		if n > 0 && (caps[addr] == 0 || n < caps[addr]) {
			caps[addr] = n
		}
	}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if ep, err := cfg.SourceEndpoint(a); err == nil {
			add(ep.Addr(), cfg.SourceFor(a).MaxConnections)
		}
		if ep, err := cfg.DestEndpoint(a); err == nil {
			add(ep.Addr(), cfg.DestinationFor(a).MaxConnections)
		}
	}
	return caps
}
