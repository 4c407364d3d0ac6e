// Package config reads, checks and describes mailferry's configuration: the
// server URLs of the command line (ParseURL), the TOML file of `mailferry run`
// (Load, Validate) with its accounts, optionally from a CSV file, each of
// which may override any key of the server sections (SourceFor,
// DestinationFor), and where each password comes from (SecretSource).
//
// Loading is strict: an unknown key, a key spelled with the wrong case, a
// value of the wrong type or a bad duration is an error that names the key and
// its line (*ConfigError; the command maps it to exit status 2). Passwords are
// never resolved while loading, so `mailferry config check` runs no password
// command; SecretSource.Resolve does that later, when an account connects
// (package account).
// Relative paths in the file (state, accounts_file, tls_ca, *_password_file)
// are relative to the config file's directory, and password commands run
// there. Nothing here does network I/O.
package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// Defaults for keys the file leaves out.
const (
	DefaultWorkers          = 4
	DefaultFolder           = "INBOX"
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultBatchMessages    = pipeline.DefaultBatchMessages
	DefaultBatchBytes       = pipeline.DefaultBatchBytes
	DefaultSpoolMemoryBytes = 8 << 20
)

// LogFormat is the log output format.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// DatePolicy chooses the internal date of a message from a POP3 source.
type DatePolicy string

// Date policies.
const (
	// DateReceived takes the newest Received: header's timestamp, then Date:,
	// then the time of transfer.
	DateReceived DatePolicy = "received"
	// DateHeader takes the Date: header, then the time of transfer.
	DateHeader DatePolicy = "date"
	// DateNow lets the destination use the time of transfer.
	DateNow DatePolicy = "now"
)

// FlagPolicy chooses the flags of a message from a POP3 source.
type FlagPolicy string

// Flag policies.
const (
	FlagsNone   FlagPolicy = "none"   // no flags
	FlagsSeen   FlagPolicy = "seen"   // \Seen on every message
	FlagsStatus FlagPolicy = "status" // from mbox Status:/X-Status: headers
)

// Config is a loaded configuration. Build one with Default and fill it, or
// with Load; check a hand-built one with Validate.
type Config struct {
	File  string // the file it was loaded from; "" when built in code
	State string // ledger path or postgres:// URL; "" = the command's default
	// StatePassword is where the password of a PostgreSQL ledger comes
	// from (state_password_env, state_password_file); never the URL.
	StatePassword SecretSource
	// LedgerRetention is how long the checkpoint keeps the entries of
	// messages deleted at the source (gone), so that status and reports
	// can say when; 0: the checkpoint's default (30 days).
	LedgerRetention time.Duration
	Workers         int // accounts in parallel
	DryRun          bool
	// CreateFolders lets a copy create a new top-level destination folder
	// the config names (dest_folder, [destination] folder, [folders]
	// root): without it a name that is not there is refused, as a typo
	// would be. Folders mapped from an IMAP source are created anyway.
	CreateFolders bool
	// MatchExisting (default true): a copy into a destination folder the
	// ledger has nothing for yet first matches what the folder holds and
	// sends only what is not there byte for byte (match_existing).
	MatchExisting bool
	DeleteSource  bool
	DeleteAfter   time.Duration // delete_after: delete copied messages this long after; excludes DeleteSource
	// Mirror makes every account's passes follow the source (docs/mirror.md):
	// copies of messages deleted or moved there are removed or moved on the
	// destination. An account's own mirror key wins (MirrorOf).
	Mirror bool
	// MaxDelete and MaxDeletePercent cap one mirror pass's removals per
	// account (0: not set; neither: 10 % of the account's copied messages,
	// at least 50).
	MaxDelete        int
	MaxDeletePercent int
	LogFormat        LogFormat
	// OnLocked is what a run does with an account another run is working
	// on (overlapping cron runs): "fail" (default), "skip" or "wait" (up to
	// LockWait).
	OnLocked     string
	LockWait     time.Duration
	Source       Source
	Destination  Destination
	Policy       Policy
	Folders      Folders
	AccountsFile string // CSV file whose accounts were appended to Accounts
	Accounts     []Account

	// Every, when set, makes `mailferry run` a long-running service that
	// polls each account at this interval (with jitter) instead of running
	// once. Idle keeps an IMAP IDLE on the source INBOX between polls of
	// IMAP-source accounts (default true). MetricsAddr, when set, serves
	// Prometheus metrics over HTTP at this host:port while the service runs.
	Every       time.Duration
	Idle        bool
	MetricsAddr string

	// UIAddr, when set, serves the status page at this host:port (a port
	// alone: on 127.0.0.1) while `mailferry run` runs, and for `mailferry
	// status --serve`. UIActions enables its actions (pause, resume,
	// retry), which need the token: the first line of UITokenFile.
	UIAddr      string
	UIActions   bool
	UITokenFile string
	// NotifyWebhook (an http(s) URL) gets a JSON POST, and NotifyCommand
	// (run with sh -c in the config's directory) the same JSON on its
	// standard input, when an account fails and when a run ends.
	NotifyWebhook string
	NotifyCommand string

	// Limits are every account's traffic limits (an account's own keys
	// override them: LimitsOf); Total the whole run's, shared by its
	// accounts; MaxConnectionsTotal caps the run's connections (0: none).
	// Timezone names the zone of timetables and daily quotas ("" or
	// "Local": the machine's).
	Limits              Limits
	Total               TotalLimits
	MaxConnectionsTotal int
	Timezone            string

	// pos maps a key ("source.url", "workers") to where Load found it, so
	// Validate can name the line.
	pos map[string]position
}

// Server holds what the source and the destination sections share.
type Server struct {
	URL                string // scheme://host[:port][/Mailbox][?tls=none&auth=…], no user
	TLSCA              string // extra CA file (PEM) to trust
	InsecureSkipVerify bool
	AllowPlaintext     bool // allow credentials over a connection without TLS (tls=none)
	Auth               Auth
	MasterUser         string       // log in as each account's user through this master user
	MasterPassword     SecretSource // the master user's password
	// MasterLogin is how the master user logs in: SASL PLAIN with the
	// account's user as authorization identity (the default), or the
	// protocol's plain login as "user" + MasterSeparator + "master".
	MasterLogin     MasterLogin
	MasterSeparator string // for MasterLoginSeparator; "" = DefaultMasterSeparator
	IdleTimeout     time.Duration
	// ConnectTimeout, TLSTimeout and GreetingTimeout bound the steps of
	// opening a connection, each on its own: a server that accepts and
	// never answers fails in seconds. 0: 30 s.
	ConnectTimeout  time.Duration
	TLSTimeout      time.Duration
	GreetingTimeout time.Duration
	MaxConnections  int // per-server connection cap across workers; 0 = none beyond workers
	// MaxConnectionsPerUser caps each user's connections to the server
	// across the run's accounts; 0: the provider's known limit, if any.
	MaxConnectionsPerUser int
	// Provider names the server family (package provider): "gmail",
	// "microsoft365", or "" when the URL's host is none of theirs. Load
	// sets it from the URL's host when the key is absent, and fills in the
	// URL, auth and the OAuth2 endpoints and scopes it implies.
	Provider string
	// OAuth2, when set, logs in with an OAuth2 token obtained by a grant
	// (the oauth2 table) instead of a password.
	OAuth2 *OAuth2
}

// MasterLogin chooses how a master user logs in for an account.
type MasterLogin string

// Master login forms.
const (
	// MasterLoginSASL is SASL PLAIN (RFC 4616 §2) with the master user as
	// authentication identity and the account's user as authorization
	// identity: POP3 AUTH PLAIN, IMAP AUTHENTICATE PLAIN. The default.
	MasterLoginSASL MasterLogin = "sasl"
	// MasterLoginSeparator is Dovecot's (and Cyrus-style proxies') form:
	// POP3 USER/PASS or IMAP LOGIN as "alice*admin" with the master
	// password, for servers or proxies that offer no SASL PLAIN.
	MasterLoginSeparator MasterLogin = "separator"
)

// DefaultMasterSeparator is Dovecot's usual auth_master_user_separator.
const DefaultMasterSeparator = "*"

// LoginUser returns the user name and the authorization identity with which
// the master user of s logs in for user: (master, user) for SASL PLAIN,
// (user+separator+master, "") for the separator form. Without a master user
// it returns (user, "").
func (s *Server) LoginUser(user string) (login, authzID string) {
	switch {
	case s.MasterUser == "":
		return user, ""
	case s.MasterLogin == MasterLoginSeparator:
		return user + s.separator() + s.MasterUser, ""
	}
	return s.MasterUser, user
}

func (s *Server) separator() string {
	if s.MasterSeparator == "" {
		return DefaultMasterSeparator
	}
	return s.MasterSeparator
}

// Source is the [source] section.
type Source struct {
	Server
}

// Destination is the [destination] section.
type Destination struct {
	Server
	Folder        string // where POP3 mail lands; "" = the URL's path, else INBOX
	BatchMessages int    // messages per MULTIAPPEND / pipelined batch
	Sessions      int    // destination sessions appending at once per account
	BatchBytes    int64  // bytes per batch
}

// Policy is the [policy] section.
type Policy struct {
	InternalDate     DatePolicy
	Flags            FlagPolicy
	MaxMessageBytes  int64 // larger messages are skipped and reported; 0 = no limit
	SpoolMemoryBytes int64 // messages up to this size are spooled in memory, larger ones in a temp file
	// XUIDL puts "X-UIDL: <original UIDL>" before each POP3 message, so a
	// Dovecot destination with pop3_reuse_xuidl serves the old UIDLs.
	XUIDL bool
}

// Folders is the [folders] section: which folders of an IMAP source are
// copied and where they go.
type Folders struct {
	Include, Exclude []string // folder names or patterns (* any, % one level, ? one character)
	Root             string   // put every folder under this destination folder ("Old")
	Rename           []FolderRename
	SyncFlags        bool // bring flags of earlier copies up to date (default true)
	SpecialUse       bool // map Sent, Drafts, Trash, Junk, Archive by role (default true)
	// GmailLabels is how a source with labels (Gmail) is copied:
	// GmailOneCopy (one copy per message, its other labels as keywords;
	// the default, "" too) or GmailPerLabel (one copy per label folder).
	GmailLabels    string
	MaxAge, MinAge time.Duration // copy only messages younger / older than this; 0 = no limit
}

// Values of folders.gmail_labels.
const (
	GmailOneCopy  = "one-copy"
	GmailPerLabel = "per-label"
)

// FolderRename renames a source folder; with Regexp, From is a regular
// expression and To may use $1 and the like. The first matching rule wins.
type FolderRename struct {
	From, To string
	Regexp   bool
}

// Account is one mailbox to move.
type Account struct {
	Name string // unique; defaults to SourceUser
	// ID, when set, names the account in the ledger whatever its servers
	// are called: renaming a server (IP to name, a new load balancer)
	// keeps its history. Unique; "" lets the servers and users name it.
	ID             string
	SourceUser     string
	SourcePassword SecretSource
	DestUser       string // defaults to SourceUser
	DestPassword   SecretSource
	DestFolder     string // "" = Destination.Folder
	// DeletePolicy is the account's own keep/delete policy, set when it has
	// delete_source or delete_after; nil: the top-level keys apply.
	DeletePolicy *DeletePolicy
	// Mirror is the account's own mirror key; nil: the top-level key.
	Mirror *bool
	// MirrorAllowEmpty names the account's source folders emptied at the
	// source on purpose: a mirror pass removes their copies within the
	// caps instead of holding them back as "cannot tell"
	// (mirror_allow_empty, docs/mirror.md).
	MirrorAllowEmpty []string
	// limits are the account's own traffic keys; nil: none (LimitsOf).
	limits *fileLimits

	// Source and Destination are the server sections with this account's
	// overrides merged in ([account.source] and [account.destination]
	// tables, source_* and dest_* columns of an accounts file); nil when the
	// account overrides nothing. Use Config.SourceFor and DestinationFor.
	Source      *Source
	Destination *Destination

	// Origin is where the account was defined ("migrate.toml:12",
	// "users.csv:7"), for messages; "" when built in code.
	Origin string
	pos    position            // the [[account]] header or the CSV row
	keys   map[string]position // per key ("source_password_env"), TOML only
	csv    bool                // from an accounts file: keys are column names
	// srcOver and dstOver are the overrides as written, until Load merges
	// them over the sections into Source and Destination.
	srcOver *fileServer
	dstOver *fileDestSettings
}

// keyName spells a key of an account's server override as the user wrote
// it: "source.auth" in TOML, "source_auth" in an accounts file.
func (a *Account) keyName(section, key string) string {
	if a.csv {
		return csvPrefix(section) + key
	}
	return section + "." + key
}

// SourceFor returns the source server settings of account a: the [source]
// section with a's overrides.
func (c *Config) SourceFor(a *Account) *Source {
	if a.Source != nil {
		return a.Source
	}
	return &c.Source
}

// DestinationFor returns the destination settings of account a: the
// [destination] section with a's overrides.
func (c *Config) DestinationFor(a *Account) *Destination {
	if a.Destination != nil {
		return a.Destination
	}
	return &c.Destination
}

func (a *Account) at(key string) position {
	if p, ok := a.keys[key]; ok {
		return p
	}
	return a.pos
}

// DeletePolicy is what happens at the source to messages once they are
// copied: kept (the zero value), deleted at once, or deleted after a period.
type DeletePolicy struct {
	DeleteSource bool          // delete_source: delete once copied
	DeleteAfter  time.Duration // delete_after: delete this long after copying; 0 = not
}

// Deletes reports whether the policy deletes anything at the source.
func (p DeletePolicy) Deletes() bool { return p.DeleteSource || p.DeleteAfter > 0 }

// MirrorOf reports whether account a's passes mirror the source: its own
// mirror key when it has one, else the top-level key.
func (c *Config) MirrorOf(a *Account) bool {
	if a.Mirror != nil {
		return *a.Mirror
	}
	return c.Mirror
}

// DeletePolicyOf returns account a's keep/delete policy: its own when it
// sets delete_source or delete_after, else the top-level keys.
func (c *Config) DeletePolicyOf(a *Account) DeletePolicy {
	if a.DeletePolicy != nil {
		return *a.DeletePolicy
	}
	return DeletePolicy{DeleteSource: c.DeleteSource, DeleteAfter: c.DeleteAfter}
}

// Default returns a Config with every default filled in and no accounts.
func Default() *Config {
	c := &Config{
		Workers:     DefaultWorkers,
		OnLocked:    "fail",
		LockWait:    10 * time.Minute,
		Idle:        true,
		LogFormat:   LogText,
		Source:      Source{Server{IdleTimeout: DefaultIdleTimeout}},
		Destination: Destination{Server: Server{IdleTimeout: DefaultIdleTimeout}, BatchMessages: DefaultBatchMessages, BatchBytes: DefaultBatchBytes, Sessions: 2},
		Policy:      Policy{InternalDate: DateReceived, Flags: FlagsNone, SpoolMemoryBytes: DefaultSpoolMemoryBytes},
		Folders:     Folders{SyncFlags: true, SpecialUse: true},
	}
	c.MatchExisting = true
	return c
}

// position is where a key or row was found.
type position struct {
	File      string
	Line, Col int
	ValCol    int // the column of the key's value; 0 when unknown
}

// ConfigError is a problem in a config or accounts file. Error reads like
// `migrate.toml:12: unknown key "source.pasword"`. Callers map it to exit
// status 2; errors.As finds it in what Load and Validate return.
type ConfigError struct {
	File string // "" for a Config built in code
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based byte column; 0 when unknown
	Key  string // dotted key ("source.url") or CSV column; "" when none applies
	Msg  string // the problem, naming the key; never a secret
	Err  error  // underlying error, if any
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Col > 0 {
				b.WriteString(":" + strconv.Itoa(e.Col))
			}
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Warning is something the caller should log but that does not stop a run:
// a secret in a file others can read, insecure_skip_verify, and the like.
type Warning struct {
	File string
	Line int // 0 when it concerns the whole file
	Key  string
	Msg  string
}

func (w Warning) String() string {
	loc := w.File
	if loc != "" && w.Line > 0 {
		loc += ":" + strconv.Itoa(w.Line)
	}
	if loc == "" {
		return w.Msg
	}
	return loc + ": " + w.Msg
}

// errList collects ConfigErrors; err sorts them by file and line.
type errList []*ConfigError

func (l *errList) add(p position, key, format string, args ...any) {
	*l = append(*l, &ConfigError{File: p.File, Line: p.Line, Col: p.Col, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *errList) addErr(p position, key string, err error, format string, args ...any) {
	*l = append(*l, &ConfigError{File: p.File, Line: p.Line, Col: p.Col, Key: key, Msg: fmt.Sprintf(format, args...), Err: err})
}

// maxErrors bounds how many problems one Load or Validate reports.
const maxErrors = 20

func (l errList) err() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		return l[i].Line < l[j].Line
	})
	if len(l) == 1 {
		return l[0]
	}
	if len(l) > maxErrors {
		l = l[:maxErrors]
	}
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (c *Config) at(key string) position {
	if p, ok := c.pos[key]; ok {
		return p
	}
	return position{File: c.File}
}

// SourceEndpoint returns the source server for account a: the [source] URL
// with a's user and the section's auth setting, a's overrides applied.
func (c *Config) SourceEndpoint(a *Account) (Endpoint, error) {
	ep, err := c.SourceFor(a).endpoint()
	if err != nil {
		return Endpoint{}, err
	}
	ep.User = a.SourceUser
	return ep, nil
}

// DestEndpoint returns the destination server for account a. For a POP3
// source, Mailbox is the folder where a's mail lands; for an IMAP source,
// whose folders keep their names, it is the [folders] root ("" = the top).
func (c *Config) DestEndpoint(a *Account) (Endpoint, error) {
	d := c.DestinationFor(a)
	ep, err := d.endpoint()
	if err != nil {
		return Endpoint{}, err
	}
	ep.User = a.DestUser
	if ep.User == "" {
		ep.User = a.SourceUser
	}
	if src, err := c.SourceFor(a).endpoint(); err == nil && src.Protocol == IMAP {
		// The root the source's folders go under, as DEST's path is for
		// `mailferry copy`: the account's dest_folder, else [folders] root.
		ep.Mailbox = firstNonEmpty(a.DestFolder, c.Folders.Root)
		return ep, nil
	}
	switch {
	case a.DestFolder != "":
		ep.Mailbox = a.DestFolder
	case d.Folder != "":
		ep.Mailbox = d.Folder
	case ep.Mailbox == "":
		ep.Mailbox = DefaultFolder
	}
	return ep, nil
}

// DestFolderKey names the key that set the destination folder of a's
// endpoint (DestEndpoint's Mailbox): "dest_folder", "folders.root",
// "destination.folder" or "destination.url"; "" when none did (INBOX, or
// an IMAP source's folders at the top).
func (c *Config) DestFolderKey(a *Account) string {
	src, err := c.SourceFor(a).endpoint()
	imap := err == nil && src.Protocol == IMAP
	d := c.DestinationFor(a)
	switch {
	case a.DestFolder != "":
		return "dest_folder"
	case imap && c.Folders.Root != "":
		return "folders.root"
	case imap:
		return ""
	case d.Folder != "":
		return "destination.folder"
	}
	if ep, err := d.endpoint(); err == nil && ep.Mailbox != "" {
		return "destination.url"
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// endpoint parses the section URL and merges the auth key into it.
func (s *Server) endpoint() (Endpoint, error) {
	ep, err := ParseURL(s.URL)
	if err != nil {
		return Endpoint{}, err
	}
	if s.Auth != AuthDefault {
		if ep.Auth != AuthDefault && ep.Auth != s.Auth {
			return Endpoint{}, fmt.Errorf("auth=%s in the URL contradicts auth = %q", ep.Auth, s.Auth)
		}
		ep.Auth = s.Auth
	}
	return ep, nil
}
