package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/provider"
)

// Validate checks c without touching the network or resolving any secret:
// URLs parse, the source is pop3/pop3s/imap/imaps and the destination
// imap/imaps, tls=none comes with allow_plaintext, workers >= 1, enumerations
// hold known values, there is at least one account, account names are unique,
// no password is configured twice, and every account has a password unless
// the section logs in through a master user. It returns nil or errors that
// are (or join) *ConfigError values, sorted by line.
func (c *Config) Validate() error {
	var errs errList
	if c.Workers < 1 {
		errs.add(c.at("workers"), "workers", "workers must be at least 1, got %d", c.Workers)
	}
	if c.LogFormat != LogText && c.LogFormat != LogJSON {
		errs.add(c.at("log_format"), "log_format", "log_format must be \"text\" or \"json\", got %q", c.LogFormat)
	}
	switch c.OnLocked {
	case "fail", "skip", "wait":
	default:
		errs.add(c.at("on_locked"), "on_locked", "on_locked must be \"fail\", \"skip\" or \"wait\", got %q", c.OnLocked)
	}
	if c.DeleteSource && c.DeleteAfter > 0 {
		errs.add(c.at("delete_after"), "delete_after",
			"delete_source and delete_after exclude each other: delete at once (delete_source = true) or after a period (delete_after = %q)", Duration(c.DeleteAfter))
	}
	if c.MaxDelete < 0 {
		errs.add(c.at("max_delete"), "max_delete", "max_delete must not be negative (0 or absent: the default cap)")
	}
	if c.MaxDeletePercent < 0 || c.MaxDeletePercent > 100 {
		errs.add(c.at("max_delete_percent"), "max_delete_percent", "max_delete_percent must be between 0 and 100, got %d", c.MaxDeletePercent)
	}
	if c.DeleteAfter < 0 {
		errs.add(c.at("delete_after"), "delete_after", "delete_after must not be negative")
	}
	if c.LedgerRetention < 0 {
		errs.add(c.at("ledger_retention"), "ledger_retention", "ledger_retention must not be negative")
	}
	if checkpoint.IsPostgres(c.State) {
		if u, err := url.Parse(c.State); err != nil {
			errs.add(c.at("state"), "state", "state is not a valid database URL")
		} else if _, has := u.User.Password(); has || u.Query().Has("password") {
			// Said without repeating the URL: it holds the password.
			errs.add(c.at("state"), "state", "the state URL holds a password: remove it and give it through state_password_env or state_password_file (or MAILFERRY_STATE_PASSWORD)")
		}
	} else if !c.StatePassword.IsZero() {
		errs.add(c.at(c.StatePassword.Key("state_password")), c.StatePassword.Key("state_password"),
			"%s is for a PostgreSQL state (postgres://…); state is a file", c.StatePassword.Key("state_password"))
	}
	if err := c.StatePassword.conflict("state_password"); err != nil {
		errs.add(c.at("state_password_file"), "state_password", "%v", err)
	}
	if c.LockWait < 0 {
		errs.add(c.at("lock_wait"), "lock_wait", "lock_wait must not be negative")
	}
	if c.Every < 0 || c.Every > 0 && c.Every < time.Second {
		errs.add(c.at("every"), "every", "every must be at least 1s (or 0: run once), got %s", c.Every)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs.add(c.at("metrics_addr"), "metrics_addr", "metrics_addr must be host:port (e.g. 127.0.0.1:9464): %v", err)
		}
	}
	if c.UIAddr != "" {
		addr := c.UIAddr
		if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
			addr = "127.0.0.1:" + addr
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs.add(c.at("ui_addr"), "ui_addr", "ui_addr must be host:port or a port (e.g. 127.0.0.1:8080): %v", err)
		}
	}
	if c.NotifyWebhook != "" {
		// The URL itself is not repeated: its path is often its secret.
		if u, err := url.Parse(c.NotifyWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.add(c.at("notify_webhook"), "notify_webhook", "notify_webhook must be an http:// or https:// URL with a host")
		}
	}
	c.validateTraffic(&errs)
	c.validateServer(&errs, "source", &c.Source.Server)
	dstEP, dstOK := c.validateServer(&errs, "destination", &c.Destination.Server)
	validateDestination(&errs, c.sectionKeys("destination"), &c.Destination, dstEP, dstOK)
	d := &c.Destination
	if d.Folder != "" {
		if err := checkText(d.Folder); err != nil {
			errs.add(c.at("destination.folder"), "destination.folder", "destination.folder: %v", err)
		}
		if dstOK && dstEP.Mailbox != "" && dstEP.Mailbox != d.Folder {
			errs.add(c.at("destination.folder"), "destination.folder",
				"destination.folder %q contradicts the folder %q in destination.url", d.Folder, dstEP.Mailbox)
		}
	}

	p := &c.Policy
	switch p.InternalDate {
	case DateReceived, DateHeader, DateNow:
	default:
		errs.add(c.at("policy.internal_date"), "policy.internal_date", "policy.internal_date must be \"received\", \"date\" or \"now\", got %q", p.InternalDate)
	}
	switch p.Flags {
	case FlagsNone, FlagsSeen, FlagsStatus:
	default:
		errs.add(c.at("policy.flags"), "policy.flags", "policy.flags must be \"none\", \"seen\" or \"status\", got %q", p.Flags)
	}
	if p.MaxMessageBytes < 0 {
		errs.add(c.at("policy.max_message_bytes"), "policy.max_message_bytes", "policy.max_message_bytes must not be negative")
	}
	if p.SpoolMemoryBytes < 0 {
		errs.add(c.at("policy.spool_memory_bytes"), "policy.spool_memory_bytes", "policy.spool_memory_bytes must not be negative")
	}

	if p.XUIDL {
		if ep, err := ParseURL(c.Source.URL); err == nil && ep.Protocol != POP3 {
			errs.add(c.at("policy.x_uidl"), "policy.x_uidl", "policy.x_uidl needs a POP3 source: IMAP messages have no UIDL")
		}
	}
	for i, r := range c.Folders.Rename {
		key := fmt.Sprintf("folders.rename[%d]", i)
		switch {
		case r.From == "" || r.To == "":
			errs.add(c.at("folders.rename"), key, "%s needs both from and to", key)
		case r.Regexp:
			if _, err := regexp.Compile(r.From); err != nil {
				errs.add(c.at("folders.rename"), key, "%s: from is not a valid regular expression: %v", key, err)
			}
		}
	}
	for _, f := range []struct {
		key      string
		patterns []string
	}{{"folders.include", c.Folders.Include}, {"folders.exclude", c.Folders.Exclude}} {
		key := f.key
		for i, p := range f.patterns {
			if err := mapping.CheckFolderPattern(p); err != nil {
				errs.add(c.at(key), key, "%s[%d]: %v", key, i, err)
			}
		}
	}
	switch c.Folders.GmailLabels {
	case "", GmailOneCopy, GmailPerLabel:
	default:
		errs.add(c.at("folders.gmail_labels"), "folders.gmail_labels", "folders.gmail_labels must be %q or %q, got %q",
			GmailOneCopy, GmailPerLabel, c.Folders.GmailLabels)
	}
	if c.Folders.MaxAge < 0 || c.Folders.MinAge < 0 {
		errs.add(c.at("folders"), "folders", "folders.max_age and folders.min_age must not be negative")
	}
	if c.Folders.MaxAge > 0 && c.Folders.MinAge >= c.Folders.MaxAge {
		errs.add(c.at("folders.min_age"), "folders.min_age", "folders.min_age (%v) must be less than folders.max_age (%v): nothing would be copied",
			c.Folders.MinAge, c.Folders.MaxAge)
	}
	c.validateAccounts(&errs)
	return errs.err()
}

// serverKeys names and places the keys of one server's settings: a section
// ("source.auth" at its line) or an account's override of one ("source_auth"
// or "source.auth", at the account's row or key).
type serverKeys struct {
	section string // "source" or "destination"
	sep     string // between a table and its keys: "." in TOML, "_" in CSV columns
	name    func(key string) string
	at      func(key string) position
}

func (c *Config) sectionKeys(section string) serverKeys {
	return serverKeys{section: section, sep: ".",
		name: func(k string) string { return section + "." + k },
		at: func(k string) position {
			if k == "" {
				return c.at(section)
			}
			return c.at(section + "." + k)
		}}
}

func accountKeys(a *Account, section string) serverKeys {
	sep := "."
	if a.csv {
		sep = "_"
	}
	return serverKeys{section: section, sep: sep,
		name: func(k string) string { return a.keyName(section, k) },
		at: func(k string) position {
			if k == "" {
				return a.at(section)
			}
			return a.at(section + "." + k)
		}}
}

func (c *Config) validateServer(errs *errList, section string, s *Server) (Endpoint, bool) {
	return validateServer(errs, c.sectionKeys(section), s)
}

func validateServer(errs *errList, k serverKeys, s *Server) (Endpoint, bool) {
	key := k.name("url")
	if s.URL == "" {
		if s.Provider != "" && provider.Lookup(s.Provider) == nil {
			errs.add(k.at("provider"), k.name("provider"), "%s must be %s, got %q", k.name("provider"), provider.Names(), s.Provider)
		} else {
			errs.add(k.at(""), key, "%s is missing (or set %s = %s)", key, k.name("provider"), provider.Names())
		}
		return Endpoint{}, false
	}
	ok := true
	ep, err := ParseURL(s.URL)
	if err != nil {
		errs.addErr(k.at("url"), key, err, "%s: %v", key, err)
		ok = false
	} else {
		if ep.User != "" {
			errs.add(k.at("url"), key, "%s must not contain a user name: users come from the accounts", key)
		}
		if ep.TLS == TLSNone && !s.AllowPlaintext {
			errs.add(k.at("url"), key, "%s has tls=none: set %s = true to send passwords without TLS", key, k.name("allow_plaintext"))
		}
	}
	auth := k.name("auth")
	switch s.Auth {
	case AuthDefault, AuthLogin, AuthPlain, AuthXOAuth2, AuthOAuthBearer:
		if ok && s.Auth != AuthDefault && ep.Auth != AuthDefault && ep.Auth != s.Auth {
			errs.add(k.at("auth"), auth, "%s = %q contradicts auth=%s in %s", auth, s.Auth, ep.Auth, key)
		}
	default:
		errs.add(k.at("auth"), auth, "%s must be %s, got %q", auth, authChoices, s.Auth)
	}
	master := k.name("master_user")
	if s.MasterUser != "" && (s.Auth.IsOAuth2() || (ok && ep.Auth.IsOAuth2())) {
		errs.add(k.at("master_user"), master,
			"%s cannot be combined with an OAuth2 login (auth = %q): a bearer token speaks for one user only; an account that overrides auth with an OAuth2 mechanism drops the inherited master user", master, s.Auth)
	}
	if s.MasterUser != "" {
		if err := checkText(s.MasterUser); err != nil {
			errs.add(k.at("master_user"), master, "%s: %v", master, err)
		}
		if s.MasterPassword.IsZero() {
			errs.add(k.at("master_user"), master,
				"%s needs %s, _file or _command", master, k.name("master_password_env"))
		}
	} else if !s.MasterPassword.IsZero() {
		errs.add(k.at(""), master, "%s has a master password but no master_user", k.section)
	}
	switch s.MasterLogin {
	case "", MasterLoginSASL, MasterLoginSeparator:
	default:
		errs.add(k.at("master_login"), k.name("master_login"), "%s must be \"sasl\" or \"separator\", got %q", k.name("master_login"), s.MasterLogin)
	}
	if s.MasterSeparator != "" {
		if strings.ContainsFunc(s.MasterSeparator, func(r rune) bool { return isControl(r) || r == ' ' || r == '"' }) {
			errs.add(k.at("master_separator"), k.name("master_separator"), "%s must not contain spaces, quotes or control characters", k.name("master_separator"))
		}
	}
	if err := s.MasterPassword.conflict(k.name("master_password")); err != nil {
		second := s.MasterPassword.set("master_password")[1]
		errs.add(k.at(second), k.name("master_password"), "%v", err)
	}
	if s.Provider != "" && provider.Lookup(s.Provider) == nil {
		errs.add(k.at("provider"), k.name("provider"), "%s must be %s, got %q", k.name("provider"), provider.Names(), s.Provider)
	}
	if s.OAuth2 != nil {
		validateOAuth2(errs, k, s)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"idle_timeout", s.IdleTimeout}, {"connect_timeout", s.ConnectTimeout}, {"tls_timeout", s.TLSTimeout}, {"greeting_timeout", s.GreetingTimeout}} {
		if d.v < 0 {
			errs.add(k.at(d.key), k.name(d.key), "%s must not be negative", k.name(d.key))
		}
	}
	if s.MaxConnections < 0 {
		errs.add(k.at("max_connections"), k.name("max_connections"), "%s must not be negative", k.name("max_connections"))
	}
	if s.MaxConnectionsPerUser < 0 {
		errs.add(k.at("max_connections_per_user"), k.name("max_connections_per_user"), "%s must not be negative", k.name("max_connections_per_user"))
	}
	return ep, ok
}

// validateDestination checks what a destination (the section or an
// account's) adds to a server: an IMAP URL, its folder and batch settings.
func validateDestination(errs *errList, k serverKeys, d *Destination, ep Endpoint, epOK bool) {
	if epOK && ep.Protocol != IMAP {
		errs.add(k.at("url"), k.name("url"), "%s must be imaps:// or imap://, got %s://", k.name("url"), ep.Scheme())
	}
	if d.BatchMessages < 1 {
		errs.add(k.at("batch_messages"), k.name("batch_messages"), "%s must be at least 1, got %d", k.name("batch_messages"), d.BatchMessages)
	}
	if d.Sessions < 1 || d.Sessions > 8 {
		errs.add(k.at("sessions"), k.name("sessions"), "%s must be from 1 to 8, got %d", k.name("sessions"), d.Sessions)
	}
	if d.BatchBytes < 1 {
		errs.add(k.at("batch_bytes"), k.name("batch_bytes"), "%s must be at least 1, got %d", k.name("batch_bytes"), d.BatchBytes)
	}
}

// validateOverrides checks an account's merged server settings with the
// sections' rules; the errors name the account and the override's key.
func (c *Config) validateOverrides(errs *errList, a *Account, label string) {
	var local errList
	if a.Source != nil {
		ep, ok := validateServer(&local, accountKeys(a, "source"), &a.Source.Server)
		if ok && c.Policy.XUIDL && ep.Protocol != POP3 {
			local.add(a.at("source.url"), a.keyName("source", "url"), "policy.x_uidl needs a POP3 source: IMAP messages have no UIDL")
		}
	}
	if a.Destination != nil {
		k := accountKeys(a, "destination")
		ep, ok := validateServer(&local, k, &a.Destination.Server)
		validateDestination(&local, k, a.Destination, ep, ok)
		folder, what := a.DestFolder, "dest_folder"
		if folder == "" {
			folder, what = a.Destination.Folder, "destination.folder"
		}
		if ok && ep.Mailbox != "" && folder != "" && ep.Mailbox != folder {
			local.add(a.at("destination.url"), k.name("url"), "%s %q contradicts the folder %q in %s; set dest_folder instead", what, folder, ep.Mailbox, k.name("url"))
		}
	}
	for _, e := range local {
		e.Msg = fmt.Sprintf("account %q: %s", label, e.Msg)
		if !a.csv {
			e.Key = "account." + e.Key
		}
		*errs = append(*errs, e)
	}
}

func (c *Config) validateAccounts(errs *errList) {
	if len(c.Accounts) == 0 {
		errs.add(position{File: c.File}, "account", "no accounts: add [[account]] sections or accounts_file")
		return
	}
	names := make(map[string]*Account, len(c.Accounts))
	ids := make(map[string]*Account)
	users := make(map[string]*Account, len(c.Accounts))
	for i := range c.Accounts {
		a := &c.Accounts[i]
		label := a.Name
		if label == "" {
			label = a.SourceUser
		}
		if a.SourceUser == "" {
			errs.add(a.at("source_user"), "account.source_user", "account %s: source_user is missing", describe(a, i))
			continue
		}
		for _, f := range []struct{ key, val string }{
			{"name", a.Name}, {"id", a.ID}, {"source_user", a.SourceUser}, {"dest_user", a.DestUser}, {"dest_folder", a.DestFolder},
		} {
			if err := checkText(f.val); err != nil {
				errs.add(a.at(f.key), "account."+f.key, "account %q: %s: %v", label, f.key, err)
			}
		}
		if prev, dup := names[label]; dup {
			errs.add(a.pos, "account.name", "account %q: duplicate name (first defined %s); set name to tell them apart", label, where(prev))
		} else {
			names[label] = a
		}
		if a.ID != "" {
			// Two accounts under one id would share one ledger history.
			if prev, dup := ids[a.ID]; dup {
				errs.add(a.at("id"), "account.id", "account %q: id %q is also the id of account %q (defined %s); ids name one account each",
					label, a.ID, prev.Name, where(prev))
			} else {
				ids[a.ID] = a
			}
		}
		if p := a.DeletePolicy; p != nil && p.DeleteSource && p.DeleteAfter > 0 {
			errs.add(a.at("delete_after"), "account.delete_after",
				"account %q: delete_source and delete_after exclude each other: delete at once or after a period", label)
		} else if p != nil && p.DeleteAfter < 0 {
			errs.add(a.at("delete_after"), "account.delete_after", "account %q: delete_after must not be negative", label)
		}
		if prev, dup := users[a.SourceUser]; dup && (c.DeletePolicyOf(a).Deletes() || c.DeletePolicyOf(prev).Deletes()) {
			errs.add(a.at("source_user"), "account.source_user",
				"account %q: source_user %q is also used by account %q (defined %s); with delete_source or delete_after that would move one mailbox twice",
				label, a.SourceUser, prev.Name, where(prev))
		} else if !dup {
			users[a.SourceUser] = a
		}
		c.validateOverrides(errs, a, label)
		if a.limits != nil {
			var local errList
			var l Limits
			a.limits.apply(&l)
			checkLimits(&local, a.at, func(k string) string { return k }, l)
			for _, e := range local {
				e.Msg = fmt.Sprintf("account %q: %s", label, e.Msg)
				if !a.csv {
					e.Key = "account." + e.Key
				}
				*errs = append(*errs, e)
			}
		}
		for _, sp := range []struct {
			prefix, master, section string
			src                     SecretSource
			oauth2                  *OAuth2
		}{
			{"source_password", c.SourceFor(a).MasterUser, "source", a.SourcePassword, c.SourceFor(a).OAuth2},
			{"dest_password", c.DestinationFor(a).MasterUser, "destination", a.DestPassword, c.DestinationFor(a).OAuth2},
		} {
			if err := sp.src.conflict(sp.prefix); err != nil {
				errs.add(a.at(sp.src.set(sp.prefix)[1]), "account."+sp.prefix, "account %q: %v", label, err)
			} else if sp.oauth2 != nil && !sp.src.IsZero() {
				errs.add(a.at(sp.src.set(sp.prefix)[0]), "account."+sp.prefix,
					"account %q: %s and the %s's oauth2 login exclude each other: the token comes from the oauth2 grant", label, sp.src.set(sp.prefix)[0], sp.section)
			} else if o := sp.oauth2; o != nil && o.TokenFile == "" && (o.Grant == oauthtoken.Device || o.Grant == oauthtoken.RefreshToken) {
				key := sp.section + ".oauth2.token_file"
				if a.csv {
					key = csvPrefix(sp.section) + "oauth2_token_file"
				}
				errs.add(a.pos, key, "account %q: grant %q needs %s (in [%s] oauth2, e.g. \"tokens/{user}.token\", or for this account)", label, o.Grant, key, sp.section)
			} else if sp.src.IsZero() && sp.master == "" && sp.oauth2 == nil {
				errs.add(a.pos, "account."+sp.prefix, "account %q: no %s (set %s_env, %s_file, %s_command or %s)",
					label, strings.ReplaceAll(sp.prefix, "_", " "), sp.prefix, sp.prefix, sp.prefix, sp.prefix)
			}
		}
	}
}

func where(a *Account) string {
	if a.Origin != "" {
		return "at " + a.Origin
	}
	return "earlier"
}

func describe(a *Account, i int) string {
	if a.Origin != "" {
		return "at " + a.Origin
	}
	return fmt.Sprintf("#%d", i+1)
}

// checkText refuses control characters, which could inject protocol commands.
func checkText(s string) error {
	if strings.IndexFunc(s, isControl) >= 0 {
		return fmt.Errorf("control characters (CR, LF, NUL and the like) are not allowed")
	}
	return nil
}
