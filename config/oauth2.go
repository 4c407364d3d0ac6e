package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/provider"
)

// OAuth2 is a server section's oauth2 table: how each account's login
// obtains its OAuth2 token (package oauthtoken). After Load, the provider's
// endpoints and scopes are filled in where the table leaves them out.
type OAuth2 struct {
	Grant           oauthtoken.Grant
	KeyFile         string // service-account: the JSON key
	Subject         string // service-account: the user to act for; "" = the account's user
	TokenURL        string
	DeviceAuthURL   string
	ClientID        string
	ClientSecret    SecretSource // client_secret_env, _file or _command
	Tenant          string       // microsoft365: the directory (tenant ID or domain)
	Scope           string       // space-separated
	TokenFile       string       // device, refresh-token: where the refresh token is kept
	CertificateFile string       // client-credentials: certificate (PEM) instead of a secret
	PrivateKeyFile  string       // its key, when not in CertificateFile

	set map[string]bool // keys written (not filled in), for validation
}

// fileOAuth2 is the oauth2 table as written. Every key is a pointer so an
// account's override can tell "not written" from "".
type fileOAuth2 struct {
	Grant               *string `toml:"grant"`
	KeyFile             *string `toml:"key_file"`
	Subject             *string `toml:"subject"`
	TokenURL            *string `toml:"token_url"`
	DeviceAuthURL       *string `toml:"device_auth_url"`
	ClientID            *string `toml:"client_id"`
	ClientSecretEnv     *string `toml:"client_secret_env"`
	ClientSecretFile    *string `toml:"client_secret_file"`
	ClientSecretCommand *string `toml:"client_secret_command"`
	Tenant              *string `toml:"tenant"`
	Scope               *string `toml:"scope"`
	TokenFile           *string `toml:"token_file"`
	CertificateFile     *string `toml:"certificate_file"`
	PrivateKeyFile      *string `toml:"private_key_file"`
}

// merge returns base with f's keys set: an account's oauth2 override
// changes single keys of the section's table, unless it names a grant,
// which starts a table of its own (the section's keys may not fit it).
// Paths are resolved against dir.
func (f *fileOAuth2) merge(base *OAuth2, dir string) *OAuth2 {
	o := &OAuth2{set: map[string]bool{}}
	if base != nil && f.Grant == nil {
		*o = *base
		o.set = maps(base.set)
	}
	v := reflect.ValueOf(f).Elem()
	for i := range v.NumField() {
		if p := v.Field(i).Interface().(*string); p != nil {
			o.set[v.Type().Field(i).Tag.Get("toml")] = true
		}
	}
	if f.Grant != nil {
		o.Grant = oauthtoken.Grant(*f.Grant)
	}
	setPath := func(dst *string, p *string) {
		if p != nil {
			*dst = relTo(dir, *p)
		}
	}
	setPath(&o.KeyFile, f.KeyFile)
	set(&o.Subject, f.Subject)
	set(&o.TokenURL, f.TokenURL)
	set(&o.DeviceAuthURL, f.DeviceAuthURL)
	set(&o.ClientID, f.ClientID)
	if f.ClientSecretEnv != nil || f.ClientSecretFile != nil || f.ClientSecretCommand != nil {
		o.ClientSecret = secretSource(dir, o.ClientSecret.Inline, deref(f.ClientSecretEnv), deref(f.ClientSecretFile), deref(f.ClientSecretCommand))
		for _, k := range []string{"client_secret_env", "client_secret_file", "client_secret_command"} {
			if !o.set[k] {
				continue
			}
			switch k {
			case "client_secret_env":
				if f.ClientSecretEnv == nil {
					delete(o.set, k)
				}
			case "client_secret_file":
				if f.ClientSecretFile == nil {
					delete(o.set, k)
				}
			case "client_secret_command":
				if f.ClientSecretCommand == nil {
					delete(o.set, k)
				}
			}
		}
	}
	set(&o.Tenant, f.Tenant)
	set(&o.Scope, f.Scope)
	setPath(&o.TokenFile, f.TokenFile)
	setPath(&o.CertificateFile, f.CertificateFile)
	setPath(&o.PrivateKeyFile, f.PrivateKeyFile)
	return o
}

func maps(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TokenFileFor returns the token file of user's login: TokenFile with
// "{user}" replaced by user, so one line serves every account
// ("tokens/{user}.token").
func (o *OAuth2) TokenFileFor(user string) string {
	// A user name never names another directory.
	return strings.ReplaceAll(o.TokenFile, "{user}", strings.NewReplacer("/", "_", `\`, "_").Replace(user))
}

// Scopes returns the scope as a list.
func (o *OAuth2) Scopes() []string { return strings.Fields(o.Scope) }

// SubjectFor returns the user a token is for: Subject, else user.
func (o *OAuth2) SubjectFor(user string) string {
	if o.Subject != "" {
		return o.Subject
	}
	return user
}

// applyProvider fills in what the provider key (or the URL's host) and an
// oauth2 table imply: the URL when none is written, auth = "xoauth2" for an
// OAuth2 login, and the provider's token endpoints and scopes. The OAuth2
// table is copied, since accounts share the section's.
func (s *Server) applyProvider() {
	ep, epErr := ParseURL(s.URL)
	p := provider.Lookup(s.Provider)
	if s.Provider == "" && epErr == nil {
		if p = provider.Detect(ep.Host); p != nil {
			s.Provider = p.Name
		}
	}
	if p != nil && s.URL == "" {
		s.URL = p.IMAPURL
		ep, epErr = ParseURL(s.URL)
	}
	if s.OAuth2 == nil {
		return
	}
	o := *s.OAuth2
	s.OAuth2 = &o
	if s.Auth == AuthDefault && (epErr != nil || ep.Auth == AuthDefault) {
		s.Auth = AuthXOAuth2 // Google's and Microsoft's mechanism
	}
	if p == nil {
		return
	}
	proto := "imap"
	if epErr == nil && ep.Protocol == POP3 {
		proto = "pop3"
	}
	tenant := o.Tenant
	user := o.Grant == oauthtoken.Device || o.Grant == oauthtoken.RefreshToken
	if tenant == "" && user {
		tenant = p.DefaultTenant
	}
	if o.TokenURL == "" && o.Grant != oauthtoken.ServiceAccount && (!p.NeedsTenant || tenant != "") {
		o.TokenURL = provider.Endpoint(p.TokenURL, tenant)
	}
	if o.DeviceAuthURL == "" && o.Grant == oauthtoken.Device && p.DeviceAuthURL != "" && (!p.NeedsTenant || tenant != "") {
		o.DeviceAuthURL = provider.Endpoint(p.DeviceAuthURL, tenant)
	}
	if o.Scope == "" {
		if user {
			o.Scope = p.UserScope[proto]
		} else {
			o.Scope = p.AppScope
		}
	}
}

// applyProviders runs applyProvider on the sections and on every account's
// own copy of them.
func (c *Config) applyProviders() {
	c.Source.applyProvider()
	c.Destination.applyProvider()
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if a.Source != nil {
			a.Source.applyProvider()
		}
		if a.Destination != nil {
			a.Destination.applyProvider()
		}
	}
}

// oauth2Keys lists, per grant, the oauth2 keys it uses and those it needs.
var oauth2Keys = map[oauthtoken.Grant]struct{ uses, needs []string }{
	oauthtoken.ServiceAccount: {
		uses:  []string{"grant", "key_file", "subject", "token_url", "scope"},
		needs: []string{"key_file", "scope"}},
	oauthtoken.ClientCredentials: {
		uses: []string{"grant", "client_id", "client_secret_env", "client_secret_file", "client_secret_command",
			"certificate_file", "private_key_file", "tenant", "token_url", "scope"},
		needs: []string{"client_id", "token_url", "scope"}},
	oauthtoken.Device: {
		uses: []string{"grant", "client_id", "client_secret_env", "client_secret_file", "client_secret_command",
			"tenant", "token_url", "device_auth_url", "scope", "token_file"},
		needs: []string{"client_id", "token_url", "device_auth_url", "scope", "token_file"}},
	oauthtoken.RefreshToken: {
		uses: []string{"grant", "client_id", "client_secret_env", "client_secret_file", "client_secret_command",
			"tenant", "token_url", "scope", "token_file"},
		needs: []string{"client_id", "token_url", "token_file"}},
}

// validateOAuth2 checks a server's oauth2 table after the provider filled
// it in: a known grant with the keys it needs and no others, endpoints over
// https (http only to loopback), one client secret source, and an auth
// mechanism that carries a bearer token.
//
// perAccount keys (token_file, which each account may set in its own
// columns) are checked for each account by validateAccounts, not here.
func validateOAuth2(errs *errList, k serverKeys, s *Server) {
	o := s.OAuth2
	okey := func(key string) string { return k.name("oauth2" + k.sep + key) }
	at := func(key string) position {
		if p := k.at("oauth2." + key); p.Line > 0 {
			return p
		}
		return k.at("oauth2")
	}
	if s.Auth != AuthDefault && !s.Auth.IsOAuth2() {
		errs.add(k.at("auth"), k.name("auth"), "%s = %q cannot carry an OAuth2 token: leave it out (xoauth2) or use \"xoauth2\" or \"oauthbearer\"", k.name("auth"), s.Auth)
	}
	if o.Grant == "" {
		errs.add(at("grant"), okey("grant"), "%s is missing: %s", okey("grant"), grantChoices())
		return
	}
	keys, ok := oauth2Keys[o.Grant]
	if !ok {
		errs.add(at("grant"), okey("grant"), "%s = %q: want %s", okey("grant"), o.Grant, grantChoices())
		return
	}
	written := make([]string, 0, len(o.set))
	for key := range o.set {
		written = append(written, key)
	}
	slices.Sort(written)
	for _, key := range written {
		if !slices.Contains(keys.uses, key) {
			errs.add(at(key), okey(key), "%s is not used by grant %q", okey(key), o.Grant)
		}
	}
	p := provider.Lookup(s.Provider)
	if o.Grant == oauthtoken.Device && p != nil && p.NoDeviceFlow != "" {
		errs.add(at("grant"), okey("grant"), "%s = \"device\" with provider %q: %s", okey("grant"), p.Name, p.NoDeviceFlow)
		return
	}
	values := map[string]string{"key_file": o.KeyFile, "client_id": o.ClientID, "token_url": o.TokenURL,
		"device_auth_url": o.DeviceAuthURL, "scope": o.Scope, "token_file": o.TokenFile}
	for _, key := range keys.needs {
		if values[key] != "" || key == "token_file" {
			continue
		}
		msg := fmt.Sprintf("grant %q needs %s", o.Grant, okey(key))
		if (key == "token_url" || key == "device_auth_url") && p != nil && p.NeedsTenant {
			msg += fmt.Sprintf(" (or %s: provider %q takes its endpoints from the tenant)", okey("tenant"), p.Name)
		}
		errs.add(at(key), okey(key), "%s", msg)
	}
	for _, key := range []string{"token_url", "device_auth_url"} {
		if v := values[key]; v != "" {
			if err := oauthtoken.CheckEndpoint(v); err != nil {
				errs.add(at(key), okey(key), "%s: %v", okey(key), err)
			}
		}
	}
	if err := o.ClientSecret.conflict(okey("client_secret")); err != nil {
		errs.add(at("client_secret_file"), okey("client_secret"), "%v", err)
	}
	if o.Grant == oauthtoken.ClientCredentials {
		hasSecret, hasCert := !o.ClientSecret.IsZero(), o.CertificateFile != ""
		switch {
		case hasSecret && hasCert:
			errs.add(at("certificate_file"), okey("certificate_file"), "%s and %s exclude each other", okey("client_secret_*"), okey("certificate_file"))
		case !hasSecret && !hasCert:
			errs.add(at("grant"), okey("client_secret_env"), "grant \"client-credentials\" needs %s, _file or _command, or %s", okey("client_secret_env"), okey("certificate_file"))
		}
	}
	if o.PrivateKeyFile != "" && o.CertificateFile == "" {
		errs.add(at("private_key_file"), okey("private_key_file"), "%s needs %s", okey("private_key_file"), okey("certificate_file"))
	}
	if strings.ContainsFunc(o.Subject+o.ClientID+o.Tenant+o.Scope, isControl) {
		errs.add(at("grant"), okey("grant"), "%s: control characters are not allowed", k.name("oauth2"))
	}
}

func grantChoices() string {
	var q []string
	for _, g := range oauthtoken.Grants {
		q = append(q, `"`+string(g)+`"`)
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// OAuth2Flag builds the server settings of a command-line login: url
// (a SOURCE or DEST URL) with the oauth2 keys of kv, as `mailferry copy
// --dest-oauth2 grant=service-account,key_file=sa.json` gives them; flag
// names the flag in errors. The provider is detected from url's host and
// fills in endpoints and scopes as in a config file. Relative paths are
// relative to the working directory.
func OAuth2Flag(flag, url string, kv map[string]string) (*Server, error) {
	var f fileOAuth2
	v := reflect.ValueOf(&f).Elem()
	known := map[string]int{}
	for i := range v.NumField() {
		known[v.Type().Field(i).Tag.Get("toml")] = i
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i, ok := known[k]
		if !ok {
			children := map[string]*schema{}
			for n := range known {
				children[n] = &schema{}
			}
			return nil, &ConfigError{Key: flag, Msg: fmt.Sprintf("%s: unknown key %q%s", flag, k, suggest(k, children))}
		}
		val := kv[k]
		v.Field(i).Set(reflect.ValueOf(&val))
	}
	s := &Server{URL: url, OAuth2: f.merge(nil, "")}
	ep, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	s.Auth = ep.Auth
	s.URL = url
	s.applyProvider()
	var errs errList
	validateOAuth2(&errs, serverKeys{section: flag, sep: " ", name: func(k string) string {
		if k == "oauth2" {
			return flag
		}
		return flag + " " + strings.TrimPrefix(k, "oauth2 ")
	}, at: func(string) position { return position{} }}, s)
	if s.OAuth2.TokenFile == "" && (s.OAuth2.Grant == oauthtoken.Device || s.OAuth2.Grant == oauthtoken.RefreshToken) {
		errs.add(position{}, flag, "%s: grant %q needs token_file", flag, s.OAuth2.Grant)
	}
	return s, errs.err()
}
