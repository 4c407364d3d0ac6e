package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mailferry/mailferry/checkpoint"
	names "github.com/mailferry/mailferry/internal/suggest"
	"github.com/mailferry/mailferry/secret"
)

// The file* types mirror the TOML file. Pointers mark keys whose absence
// means "use the default". The toml tags are the one place key spellings live:
// the schema check below is derived from them.
type fileConfig struct {
	State             *string   `toml:"state"`
	StatePasswordEnv  *string   `toml:"state_password_env"`
	StatePasswordFile *string   `toml:"state_password_file"`
	LedgerRetention   *Duration `toml:"ledger_retention"`
	Workers           *int      `toml:"workers"`
	DryRun            bool      `toml:"dry_run"`
	CreateFolders     bool      `toml:"create_folders"`
	MatchExisting     *bool     `toml:"match_existing"`
	DeleteSource      bool      `toml:"delete_source"`
	DeleteAfter       *Duration `toml:"delete_after"`
	Mirror            bool      `toml:"mirror"`
	MaxDelete         *int      `toml:"max_delete"`
	MaxDeletePct      *int      `toml:"max_delete_percent"`
	LogFormat         *string   `toml:"log_format"`
	OnLocked          string    `toml:"on_locked"`
	LockWait          *Duration `toml:"lock_wait"`
	Every             *Duration `toml:"every"`
	Idle              *bool     `toml:"idle"`
	MetricsAddr       string    `toml:"metrics_addr"`
	UIAddr            string    `toml:"ui_addr"`
	UIActions         bool      `toml:"ui_actions"`
	UITokenFile       string    `toml:"ui_token_file"`
	NotifyHook        string    `toml:"notify_webhook"`
	NotifyCmd         string    `toml:"notify_command"`
	fileLimits
	BWLimitReadTotal          *RateText     `toml:"bwlimit_read_total"`
	BWLimitWriteTotal         *RateText     `toml:"bwlimit_write_total"`
	MaxMessagesPerSecondTotal *RateText     `toml:"max_messages_per_second_total"`
	MaxConnectionsTotal       int           `toml:"max_connections_total"`
	Timezone                  string        `toml:"timezone"`
	Source                    fileSource    `toml:"source"`
	Destination               fileDest      `toml:"destination"`
	Policy                    filePolicy    `toml:"policy"`
	Folders                   fileFolders   `toml:"folders"`
	AccountsFile              string        `toml:"accounts_file"`
	Accounts                  []fileAccount `toml:"account"`
}

// fileServer is a [source] or [destination] section, or an account's
// override of one ([account.source], source_* columns). Every key is a
// pointer so that an override can tell "not written" from "false" or "".
type fileServer struct {
	URL                   *string     `toml:"url"`
	TLSCA                 *string     `toml:"tls_ca"`
	InsecureSkipVerify    *bool       `toml:"insecure_skip_verify"`
	AllowPlaintext        *bool       `toml:"allow_plaintext"`
	Auth                  *string     `toml:"auth"`
	MasterUser            *string     `toml:"master_user"`
	MasterLogin           *string     `toml:"master_login"`
	MasterSeparator       *string     `toml:"master_separator"`
	MasterPassword        *secretText `toml:"master_password"`
	MasterPasswordEnv     *string     `toml:"master_password_env"`
	MasterPasswordFile    *string     `toml:"master_password_file"`
	MasterPasswordCommand *string     `toml:"master_password_command"`
	IdleTimeout           *Duration   `toml:"idle_timeout"`
	ConnectTimeout        *Duration   `toml:"connect_timeout"`
	TLSTimeout            *Duration   `toml:"tls_timeout"`
	GreetingTimeout       *Duration   `toml:"greeting_timeout"`
	MaxConnections        *int        `toml:"max_connections"`
	MaxConnectionsPerUser *int        `toml:"max_connections_per_user"`
	Provider              *string     `toml:"provider"`
	OAuth2                *fileOAuth2 `toml:"oauth2"`
}

type fileSource struct {
	fileServer
}

// fileDestSettings are the [destination] keys an account may override:
// all but folder, which an account sets with dest_folder.
type fileDestSettings struct {
	fileServer
	BatchMessages *int      `toml:"batch_messages"`
	Sessions      *int      `toml:"sessions"`
	BatchBytes    *ByteSize `toml:"batch_bytes"`
}

type fileDest struct {
	fileDestSettings
	Folder string `toml:"folder"`
}

type filePolicy struct {
	InternalDate     *string   `toml:"internal_date"`
	Flags            *string   `toml:"flags"`
	MaxMessageBytes  ByteSize  `toml:"max_message_bytes"`
	SpoolMemoryBytes *ByteSize `toml:"spool_memory_bytes"`
	XUIDL            bool      `toml:"x_uidl"`
}

type fileFolders struct {
	Include     []string     `toml:"include"`
	Exclude     []string     `toml:"exclude"`
	Root        string       `toml:"root"`
	SyncFlags   *bool        `toml:"sync_flags"`
	SpecialUse  *bool        `toml:"special_use"`
	GmailLabels *string      `toml:"gmail_labels"`
	MaxAge      *Duration    `toml:"max_age"`
	MinAge      *Duration    `toml:"min_age"`
	Rename      []fileRename `toml:"rename"`
}

type fileRename struct {
	From   string `toml:"from"`
	To     string `toml:"to"`
	Regexp bool   `toml:"regexp"`
}

type fileAccount struct {
	Name                  string     `toml:"name"`
	ID                    string     `toml:"id"`
	SourceUser            string     `toml:"source_user"`
	SourcePassword        secretText `toml:"source_password"`
	SourcePasswordEnv     string     `toml:"source_password_env"`
	SourcePasswordFile    string     `toml:"source_password_file"`
	SourcePasswordCommand string     `toml:"source_password_command"`
	DestUser              string     `toml:"dest_user"`
	DestPassword          secretText `toml:"dest_password"`
	DestPasswordEnv       string     `toml:"dest_password_env"`
	DestPasswordFile      string     `toml:"dest_password_file"`
	DestPasswordCommand   string     `toml:"dest_password_command"`
	DestFolder            string     `toml:"dest_folder"`
	// Source and Destination override keys of the server sections for
	// this account.
	Source       *fileSource       `toml:"source"`
	Destination  *fileDestSettings `toml:"destination"`
	DeleteSource *bool             `toml:"delete_source"`
	DeleteAfter  *Duration         `toml:"delete_after"`
	Mirror       *bool             `toml:"mirror"`
	// MirrorAllowEmpty: Account.MirrorAllowEmpty.
	MirrorAllowEmpty []string `toml:"mirror_allow_empty"`
	fileLimits
}

// secretText decodes an inline password straight into a secret.Value, so the
// text never sits in a plain string field.
type secretText struct{ v secret.Value }

func (s *secretText) UnmarshalText(b []byte) error {
	s.v = secret.New(string(b))
	return nil
}

// Load reads, checks and validates the TOML config at path, and the accounts
// file it names. It resolves no secret and runs no command; password files
// need not exist yet. It returns warnings to log (inline passwords in a file
// others can read, insecure_skip_verify) and an error that is, or joins,
// *ConfigError values.
func Load(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &ConfigError{File: path, Msg: "reading config: " + pathErrText(err), Err: err}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, &ConfigError{File: path, Msg: fmt.Sprintf("reading config: %v", err), Err: err}
	}
	return load(path, data, fi.Mode().Perm(), readAccountsFile)
}

// pathErrText is err without the path a *fs.PathError repeats; ConfigError
// already names the file.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// accountsReader reads an accounts file; Load uses readAccountsFile.
type accountsReader func(path, dir string) ([]Account, []Warning, error)

// load is Load without file reads, for tests and fuzzing. perm is the config
// file's permission bits, for the inline-secret warning.
func load(path string, data []byte, perm fs.FileMode, readAccounts accountsReader) (*Config, []Warning, error) {
	doc := string(data)
	at := func(p keyPos) position { return position{File: path, Line: p.line, Col: p.col, ValCol: p.valCol} }

	var raw map[string]any
	if _, err := toml.Decode(doc, &raw); err != nil {
		return nil, nil, tomlError(path, doc, err)
	}
	kp := keyPositions(doc)
	var errs errList
	checkTable(&errs, schemaOf(reflect.TypeFor[fileConfig]()), raw, "", "", kp, path)
	if err := errs.err(); err != nil {
		return nil, nil, err
	}

	var fc fileConfig
	md, err := toml.Decode(doc, &fc)
	if err != nil {
		return nil, nil, tomlError(path, doc, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		// Unreachable when checkTable agrees with the decoder; kept so a
		// schema mistake cannot let a key pass silently.
		k := und[0].String()
		return nil, nil, &ConfigError{File: path, Line: kp[k].line, Key: k, Msg: fmt.Sprintf("unknown key %q", k)}
	}

	dir := filepath.Dir(path)
	c := fc.toConfig(path, dir)
	c.pos = make(map[string]position, len(kp))
	for k, p := range kp {
		c.pos[k] = at(p)
	}
	var warns []Warning
	inline := false
	for i := range c.Accounts {
		a := &c.Accounts[i]
		prefix := "account[" + strconv.Itoa(i) + "]"
		a.pos = at(lookupPos(kp, prefix))
		a.Origin = fmt.Sprintf("%s:%d", path, a.pos.Line)
		a.keys = map[string]position{}
		for k, p := range kp {
			if rest, ok := strings.CutPrefix(k, prefix+"."); ok {
				a.keys[rest] = at(p)
			}
		}
		inline = inline || !a.SourcePassword.Inline.IsZero() || !a.DestPassword.Inline.IsZero() || a.hasInlineMaster()
	}
	inline = inline || !c.Source.MasterPassword.Inline.IsZero() || !c.Destination.MasterPassword.Inline.IsZero()
	if inline && perm&0o044 != 0 {
		warns = append(warns, Warning{File: path, Msg: fmt.Sprintf(
			"the file holds passwords and is readable by group or others (mode %04o); chmod 600 it or use *_password_env, _file or _command", perm)})
	}
	for _, sec := range []string{"source", "destination"} {
		s := &c.Source.Server
		if sec == "destination" {
			s = &c.Destination.Server
		}
		if s.InsecureSkipVerify {
			p := c.at(sec + ".insecure_skip_verify")
			warns = append(warns, Warning{File: path, Line: p.Line, Key: sec + ".insecure_skip_verify",
				Msg: sec + ".insecure_skip_verify is set: the server's TLS certificate is not checked"})
		}
	}

	if c.AccountsFile != "" {
		accts, w, err := readAccounts(c.AccountsFile, dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &ConfigError{File: path, Line: c.at("accounts_file").Line, Col: c.at("accounts_file").Col,
				Key: "accounts_file", Msg: fmt.Sprintf("accounts_file: %s does not exist", c.AccountsFile), Err: err}
		}
		if err != nil {
			return nil, nil, err
		}
		warns = append(warns, w...)
		c.Accounts = append(c.Accounts, accts...)
	}
	c.applyOverrides(dir)
	c.applyProviders()
	for i := range c.Accounts {
		a := &c.Accounts[i]
		// The sections' own insecure_skip_verify was warned about above.
		if a.Source != nil && a.Source.InsecureSkipVerify && !c.Source.InsecureSkipVerify {
			warns = append(warns, a.insecureWarning("source"))
		}
		if a.Destination != nil && a.Destination.InsecureSkipVerify && !c.Destination.InsecureSkipVerify {
			warns = append(warns, a.insecureWarning("destination"))
		}
	}
	warns = append(warns, c.folderWarnings()...)
	if err := c.Validate(); err != nil {
		return nil, warns, err
	}
	return c, warns, nil
}

// folderWarnings warns of a destination folder that an IMAP source's
// accounts do not use: [destination] folder and the path of its url say
// where POP3 mail lands; an IMAP source's folders go under dest_folder or
// [folders] root.
func (c *Config) folderWarnings() []Warning {
	src, err := c.Source.endpoint()
	if err != nil || src.Protocol != IMAP {
		return nil
	}
	d := c.Destination.Folder
	key := "destination.folder"
	if d == "" {
		if ep, err := c.Destination.endpoint(); err == nil {
			d, key = ep.Mailbox, "destination.url"
		}
	}
	if d == "" || strings.EqualFold(d, DefaultFolder) {
		return nil
	}
	return []Warning{{File: c.File, Line: c.at(key).Line, Key: key, Msg: fmt.Sprintf(
		"%s names the folder %q, where POP3 mail lands; the source is IMAP, so its folders keep their names and do not go there: put them under a folder with dest_folder (per account) or [folders] root", key, d)}}
}

// lineRE finds the line in BurntSushi/toml's plain-string errors, e.g.
// `toml: line 3 (last key "workers"): incompatible types`.
var lineRE = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: `)

// tomlError turns a decode error of doc into a *ConfigError with line and
// column.
func tomlError(path, doc string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		line, col := pe.Position.Line, pe.Position.Col
		if s := pe.Position.Start; s >= 0 && s <= len(doc) {
			// The line from the error's byte offset: BurntSushi/toml v1.6.0
			// counts the newline it stopped at ("expected ']' ... but got
			// '\n'") as the start of the next line, one too many.
			line = 1 + strings.Count(doc[:s], "\n")
			col = s - strings.LastIndexByte(doc[:s], '\n')
		}
		return &ConfigError{File: path, Line: line, Col: col, Key: pe.LastKey, Msg: msg, Err: err}
	}
	ce := &ConfigError{File: path, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: err}
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		ce.Line, _ = strconv.Atoi(m[1])
		ce.Key = m[2]
		ce.Msg = strings.TrimPrefix(err.Error(), m[0])
		if ce.Key != "" {
			ce.Msg = ce.Key + ": " + ce.Msg
		}
	}
	return ce
}

func (fc *fileConfig) toConfig(path, dir string) *Config {
	c := Default()
	c.File = path
	if fc.State != nil {
		c.State = *fc.State
		if !checkpoint.IsPostgres(c.State) {
			c.State = relTo(dir, c.State)
		}
	}
	if fc.StatePasswordEnv != nil || fc.StatePasswordFile != nil {
		c.StatePassword = secretSource(dir, secret.Value{}, deref(fc.StatePasswordEnv), deref(fc.StatePasswordFile), "")
	}
	if fc.LedgerRetention != nil {
		c.LedgerRetention = time.Duration(*fc.LedgerRetention)
	}
	if fc.Workers != nil {
		c.Workers = *fc.Workers
	}
	c.DryRun, c.DeleteSource, c.CreateFolders = fc.DryRun, fc.DeleteSource, fc.CreateFolders
	if fc.DeleteAfter != nil {
		c.DeleteAfter = time.Duration(*fc.DeleteAfter)
	}
	c.Mirror = fc.Mirror
	if fc.MatchExisting != nil {
		c.MatchExisting = *fc.MatchExisting
	}
	if fc.MaxDelete != nil {
		c.MaxDelete = *fc.MaxDelete
	}
	if fc.MaxDeletePct != nil {
		c.MaxDeletePercent = *fc.MaxDeletePct
	}
	if fc.OnLocked != "" {
		c.OnLocked = fc.OnLocked
	}
	if fc.LockWait != nil {
		c.LockWait = time.Duration(*fc.LockWait)
	}
	if fc.Every != nil {
		c.Every = time.Duration(*fc.Every)
	}
	if fc.Idle != nil {
		c.Idle = *fc.Idle
	}
	c.MetricsAddr = fc.MetricsAddr
	c.UIAddr, c.UIActions, c.UITokenFile = fc.UIAddr, fc.UIActions, relTo(dir, fc.UITokenFile)
	c.NotifyWebhook, c.NotifyCommand = fc.NotifyHook, fc.NotifyCmd
	fc.fileLimits.apply(&c.Limits)
	set(&c.Total.BWLimitRead, fc.BWLimitReadTotal)
	set(&c.Total.BWLimitWrite, fc.BWLimitWriteTotal)
	set(&c.Total.MaxMessagesPerSecond, fc.MaxMessagesPerSecondTotal)
	c.MaxConnectionsTotal, c.Timezone = fc.MaxConnectionsTotal, fc.Timezone
	if fc.LogFormat != nil {
		c.LogFormat = LogFormat(*fc.LogFormat)
	}
	fc.Source.fileServer.apply(&c.Source.Server, dir)
	fc.Destination.fileDestSettings.apply(&c.Destination, dir)
	c.Destination.Folder = fc.Destination.Folder
	if fc.Policy.InternalDate != nil {
		c.Policy.InternalDate = DatePolicy(*fc.Policy.InternalDate)
	}
	if fc.Policy.Flags != nil {
		c.Policy.Flags = FlagPolicy(*fc.Policy.Flags)
	}
	c.Policy.MaxMessageBytes = int64(fc.Policy.MaxMessageBytes)
	if fc.Policy.SpoolMemoryBytes != nil {
		c.Policy.SpoolMemoryBytes = int64(*fc.Policy.SpoolMemoryBytes)
	}
	c.Policy.XUIDL = fc.Policy.XUIDL
	f := &fc.Folders
	c.Folders.Include, c.Folders.Exclude, c.Folders.Root = f.Include, f.Exclude, f.Root
	if f.SyncFlags != nil {
		c.Folders.SyncFlags = *f.SyncFlags
	}
	if f.GmailLabels != nil {
		c.Folders.GmailLabels = *f.GmailLabels
	}
	if f.SpecialUse != nil {
		c.Folders.SpecialUse = *f.SpecialUse
	}
	if f.MaxAge != nil {
		c.Folders.MaxAge = time.Duration(*f.MaxAge)
	}
	if f.MinAge != nil {
		c.Folders.MinAge = time.Duration(*f.MinAge)
	}
	for _, r := range f.Rename {
		c.Folders.Rename = append(c.Folders.Rename, FolderRename(r))
	}
	if fc.AccountsFile != "" {
		c.AccountsFile = relTo(dir, fc.AccountsFile)
	}
	for _, fa := range fc.Accounts {
		a := Account{
			Name:           fa.Name,
			ID:             fa.ID,
			SourceUser:     fa.SourceUser,
			SourcePassword: secretSource(dir, fa.SourcePassword.v, fa.SourcePasswordEnv, fa.SourcePasswordFile, fa.SourcePasswordCommand),
			DestUser:       fa.DestUser,
			DestPassword:   secretSource(dir, fa.DestPassword.v, fa.DestPasswordEnv, fa.DestPasswordFile, fa.DestPasswordCommand),
			DestFolder:     fa.DestFolder,
			dstOver:        fa.Destination,
			DeletePolicy:   accountDeletePolicy(fa.DeleteSource, fa.DeleteAfter),
			Mirror:         fa.Mirror,
		}
		a.MirrorAllowEmpty = fa.MirrorAllowEmpty
		if !fa.fileLimits.isZero() {
			l := fa.fileLimits
			a.limits = &l
		}
		if fa.Source != nil {
			a.srcOver = &fa.Source.fileServer
		}
		c.Accounts = append(c.Accounts, a)
	}
	for i := range c.Accounts {
		fillAccountDefaults(&c.Accounts[i])
	}
	return c
}

// apply sets the keys f has onto s: the section's values over the
// defaults, or an account's over the section's.
func (f *fileServer) apply(s *Server, dir string) {
	set(&s.URL, f.URL)
	if f.TLSCA != nil {
		s.TLSCA = relTo(dir, *f.TLSCA)
	}
	set(&s.InsecureSkipVerify, f.InsecureSkipVerify)
	set(&s.AllowPlaintext, f.AllowPlaintext)
	if f.Auth != nil {
		s.Auth = Auth(*f.Auth)
	}
	set(&s.MasterUser, f.MasterUser)
	if f.MasterLogin != nil {
		s.MasterLogin = MasterLogin(*f.MasterLogin)
	}
	set(&s.MasterSeparator, f.MasterSeparator)
	if f.hasMasterPassword() {
		var inline secretText
		if f.MasterPassword != nil {
			inline = *f.MasterPassword
		}
		s.MasterPassword = secretSource(dir, inline.v, deref(f.MasterPasswordEnv), deref(f.MasterPasswordFile), deref(f.MasterPasswordCommand))
	}
	if f.IdleTimeout != nil {
		s.IdleTimeout = time.Duration(*f.IdleTimeout)
	}
	for _, d := range []struct {
		to   *time.Duration
		from *Duration
	}{{&s.ConnectTimeout, f.ConnectTimeout}, {&s.TLSTimeout, f.TLSTimeout}, {&s.GreetingTimeout, f.GreetingTimeout}} {
		if d.from != nil {
			*d.to = time.Duration(*d.from)
		}
	}
	set(&s.MaxConnections, f.MaxConnections)
	set(&s.MaxConnectionsPerUser, f.MaxConnectionsPerUser)
	set(&s.Provider, f.Provider)
	if f.OAuth2 != nil {
		s.OAuth2 = f.OAuth2.merge(s.OAuth2, dir)
	}
}

func (f *fileServer) hasMasterPassword() bool {
	return f.MasterPassword != nil || f.MasterPasswordEnv != nil || f.MasterPasswordFile != nil || f.MasterPasswordCommand != nil
}

func (f *fileDestSettings) apply(d *Destination, dir string) {
	f.fileServer.apply(&d.Server, dir)
	f.applyBatch(d)
}

func (f *fileDestSettings) applyBatch(d *Destination) {
	set(&d.BatchMessages, f.BatchMessages)
	set(&d.Sessions, f.Sessions)
	if f.BatchBytes != nil {
		d.BatchBytes = int64(*f.BatchBytes)
	}
}

// override returns base with an account's overrides f. Besides setting the
// keys f has, it drops an inherited master user where keeping it would
// contradict f: master_user = "" drops the inherited master password too,
// and an OAuth2 auth drops an inherited master user and its password (a
// bearer token speaks for one user only), so one file can mix master-user,
// OAuth2 and password accounts.
func (f *fileServer) override(base Server, dir string) Server {
	s := base
	if f.MasterUser == nil && (f.Auth != nil && Auth(*f.Auth).IsOAuth2() || f.OAuth2 != nil) {
		s.MasterUser, s.MasterPassword = "", SecretSource{}
	}
	if f.Provider != nil && f.URL == nil {
		// Another server family: its own servers, not the section's.
		s.URL = ""
	}
	if f.MasterUser != nil && *f.MasterUser == "" && !f.hasMasterPassword() {
		s.MasterPassword = SecretSource{}
	}
	f.apply(&s, dir)
	return s
}

// applyOverrides merges each account's overrides over the sections.
func (c *Config) applyOverrides(dir string) {
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if a.srcOver != nil {
			a.Source = &Source{Server: a.srcOver.override(c.Source.Server, dir)}
		}
		if a.dstOver != nil {
			d := c.Destination
			d.Server = a.dstOver.fileServer.override(c.Destination.Server, dir)
			a.dstOver.applyBatch(&d)
			a.Destination = &d
		}
	}
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func secretSource(dir string, inline secret.Value, env, file, command string) SecretSource {
	s := SecretSource{Inline: inline, Env: env, Command: command}
	if file != "" {
		s.File = relTo(dir, file)
	}
	if command != "" {
		s.Dir = dir
	}
	return s
}

func (a *Account) insecureWarning(section string) Warning {
	key := a.keyName(section, "insecure_skip_verify")
	p := a.at(section + ".insecure_skip_verify")
	return Warning{File: p.File, Line: p.Line, Key: key,
		Msg: fmt.Sprintf("account %q: %s is set: the server's TLS certificate is not checked", a.Name, key)}
}

// hasInlineMaster reports whether a's overrides write a master password inline.
func (a *Account) hasInlineMaster() bool {
	return a.srcOver != nil && a.srcOver.MasterPassword != nil || a.dstOver != nil && a.dstOver.MasterPassword != nil
}

// accountDeletePolicy is an account's own keep/delete policy, nil when it
// sets neither key.
func accountDeletePolicy(deleteSource *bool, deleteAfter *Duration) *DeletePolicy {
	if deleteSource == nil && deleteAfter == nil {
		return nil
	}
	var p DeletePolicy
	if deleteSource != nil {
		p.DeleteSource = *deleteSource
	}
	if deleteAfter != nil {
		p.DeleteAfter = time.Duration(*deleteAfter)
	}
	return &p
}

func fillAccountDefaults(a *Account) {
	if a.Name == "" {
		a.Name = a.SourceUser
	}
	if a.DestUser == "" {
		a.DestUser = a.SourceUser
	}
}

// relTo resolves p against dir unless it is absolute.
func relTo(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// schema is the expected shape of a TOML value, derived from the file* types.
type schema struct {
	kind     schemaKind
	children map[string]*schema // for tables and arrays of tables
}

type schemaKind int

const (
	kindTable schemaKind = iota
	kindArrayOfTables
	kindString
	kindInt
	kindBool
	kindDuration // a string for Duration
	kindSize     // an integer or a string for ByteSize
	kindStrings  // an array of strings
	kindRate     // a string, or a number (messages per second)
	kindQuota    // an integer, or a string such as "500MB" or "off"
)

func (k schemaKind) String() string {
	return [...]string{"a table", "an array of tables ([[…]])", "a string", "an integer", "true or false",
		`a duration string such as "90s", "5m" or "30d"`, `a size in bytes or a string such as "25MB"`,
		`an array of strings such as ["Sent", "Archive/*"]`,
		`a rate such as "2M", 10 or "off", or a timetable such as "Mon-Fri 08:00,2M 18:00,off"`,
		`a size in bytes, a string such as "500MB", or "off"`}[k]
}

var (
	durationType   = reflect.TypeFor[Duration]()
	byteSizeType   = reflect.TypeFor[ByteSize]()
	secretTextType = reflect.TypeFor[secretText]()
	rateTextType   = reflect.TypeFor[RateText]()
	dailyBytesType = reflect.TypeFor[DailyBytes]()
)

func schemaOf(t reflect.Type) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		return &schema{kind: kindDuration}
	case byteSizeType:
		return &schema{kind: kindSize}
	case secretTextType:
		return &schema{kind: kindString}
	case rateTextType:
		return &schema{kind: kindRate}
	case dailyBytesType:
		return &schema{kind: kindQuota}
	}
	switch t.Kind() {
	case reflect.String:
		return &schema{kind: kindString}
	case reflect.Int, reflect.Int64:
		return &schema{kind: kindInt}
	case reflect.Bool:
		return &schema{kind: kindBool}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return &schema{kind: kindStrings}
		}
		return &schema{kind: kindArrayOfTables, children: schemaOf(t.Elem()).children}
	case reflect.Struct:
		s := &schema{kind: kindTable, children: map[string]*schema{}}
		addFields(s, t)
		return s
	}
	panic("config: no schema for " + t.String())
}

func addFields(s *schema, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			addFields(s, f.Type)
			continue
		}
		if name := f.Tag.Get("toml"); name != "" {
			s.children[name] = schemaOf(f.Type)
		}
	}
}

// checkTable compares a decoded table with the schema: exact key spelling
// (BurntSushi/toml would match WORKERS to workers), TOML value types, and
// nothing unknown. path is the dotted key for messages ("account.source_user"),
// ipath the indexed one for positions ("account[1].source_user").
func checkTable(errs *errList, sc *schema, table map[string]any, path, ipath string, kp map[string]keyPos, file string) {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := table[k]
		kpath, kipath := join(path, quoteKey(k)), join(ipath, k)
		p := lookupPos(kp, kipath)
		pos := position{File: file, Line: p.line, Col: p.col}
		child, ok := sc.children[k]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", kpath)
			if hint := suggest(k, sc.children); hint != "" {
				msg += hint
			}
			errs.add(pos, kpath, "%s", msg)
			continue
		}
		vpos := pos
		if p.valCol > 0 {
			vpos.Col = p.valCol
		}
		switch child.kind {
		case kindTable:
			sub, ok := v.(map[string]any)
			if !ok {
				errs.add(vpos, kpath, "%s must be %s, got %s", kpath, child.kind, tomlType(v))
				continue
			}
			checkTable(errs, child, sub, kpath, kipath, kp, file)
		case kindArrayOfTables:
			elems, ok := tables(v)
			if !ok {
				errs.add(vpos, kpath, "%s must be %s, got %s", kpath, child.kind, tomlType(v))
				continue
			}
			for i, e := range elems {
				checkTable(errs, child, e, kpath, kipath+"["+strconv.Itoa(i)+"]", kp, file)
			}
		default:
			if !typeMatches(child.kind, v) {
				errs.add(vpos, kpath, "%s must be %s, got %s", kpath, child.kind, tomlType(v))
			}
		}
	}
}

// tables returns v as a list of tables: an array of tables ([[account]]) or
// an inline array of inline tables (account = [{...}]).
func tables(v any) ([]map[string]any, bool) {
	switch v := v.(type) {
	case []map[string]any:
		return v, true
	case []any:
		out := make([]map[string]any, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, false
			}
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

// lookupPos returns the position of an indexed key, or of its nearest
// recorded parent (keys inside inline tables are not recorded).
func lookupPos(kp map[string]keyPos, ipath string) keyPos {
	for ipath != "" {
		if p, ok := kp[ipath]; ok {
			return p
		}
		i := strings.LastIndexAny(ipath, ".[")
		if i < 0 {
			break
		}
		ipath = ipath[:i]
	}
	return keyPos{}
}

func typeMatches(k schemaKind, v any) bool {
	switch v.(type) {
	case string:
		return k == kindString || k == kindDuration || k == kindSize || k == kindRate || k == kindQuota
	case int64:
		return k == kindInt || k == kindSize || k == kindRate || k == kindQuota
	case float64:
		return k == kindRate
	case bool:
		return k == kindBool
	case []any:
		if k != kindStrings {
			return false
		}
		for _, e := range v.([]any) {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	default:
		_ = v
		return "a date/time"
	}
}

// quoteKey writes a key part as TOML would need it in a dotted key.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(k[i]) {
			return strconv.Quote(k)
		}
	}
	return k
}

// suggest returns a " (did you mean …?)" hint: the exact spelling for a case
// mismatch, else a known key at edit distance 2 or less.
func suggest(k string, known map[string]*schema) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.EqualFold(n, k) {
			return fmt.Sprintf(" (keys are case-sensitive: did you mean %q?)", n)
		}
	}
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), n); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// editDistance is suggest.Distance for key names; names longer than any
// key are not compared.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	return names.Distance(a, b)
}
