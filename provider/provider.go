// Package provider describes the hosted mail services mailferry knows by
// name: their IMAP and POP3 servers, how they want TLS, their OAuth2 token
// endpoints and the scopes each grant asks for. The config key provider =
// "gmail" | "microsoft365" fills these in, and they are detected from a
// server URL's host when the key is absent. It holds data only: no I/O.
//
// A provider's quirk profile (how its servers bend IMAP: Gmail's labels,
// Exchange's limits) belongs here too, so that one key names a server
// family everywhere; Provider has a place for it.
package provider

import (
	"strings"
)

// Provider is one hosted mail service.
type Provider struct {
	// Name is the config value: "gmail", "microsoft365".
	Name string
	// IMAPURL and POP3URL are the servers (implicit TLS) without a user.
	IMAPURL, POP3URL string
	// Hosts are the host names that identify the provider in a URL.
	Hosts []string
	// TokenURL and DeviceAuthURL are the OAuth2 endpoints; "{tenant}" is
	// replaced by the tenant. DeviceAuthURL "" means the provider offers no
	// device flow for mail.
	TokenURL, DeviceAuthURL string
	// NeedsTenant says the endpoints name a tenant (directory).
	NeedsTenant bool
	// DefaultTenant is the tenant of a user's sign-in (device,
	// refresh-token) when none is set.
	DefaultTenant string
	// AppScope is the scope of app-only tokens (client-credentials and
	// service-account); UserScope those of a user's sign-in (device,
	// refresh-token), per protocol ("imap", "pop3").
	AppScope  string
	UserScope map[string]string
	// NoDeviceFlow explains why the device grant is not offered, when it
	// is not.
	NoDeviceFlow string

	// Quirks: the server family's quirk profile (issue 15) goes here.
}

// Known providers.
var (
	Gmail = &Provider{
		Name:     "gmail",
		IMAPURL:  "imaps://imap.gmail.com:993",
		POP3URL:  "pop3s://pop.gmail.com:995",
		Hosts:    []string{"imap.gmail.com", "pop.gmail.com", "imap.googlemail.com", "pop.googlemail.com"},
		TokenURL: "https://oauth2.googleapis.com/token",
		AppScope: "https://mail.google.com/",
		UserScope: map[string]string{
			"imap": "https://mail.google.com/",
			"pop3": "https://mail.google.com/",
		},
		NoDeviceFlow: "Google's device flow does not allow the Gmail scope: use grant = \"service-account\" (Workspace) or \"refresh-token\"",
	}
	Microsoft365 = &Provider{
		Name:          "microsoft365",
		IMAPURL:       "imaps://outlook.office365.com:993",
		POP3URL:       "pop3s://outlook.office365.com:995",
		Hosts:         []string{"outlook.office365.com", "outlook.office.com"},
		TokenURL:      "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
		DeviceAuthURL: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
		NeedsTenant:   true,
		DefaultTenant: "organizations",
		AppScope:      "https://outlook.office365.com/.default",
		UserScope: map[string]string{
			"imap": "https://outlook.office365.com/IMAP.AccessAsUser.All offline_access",
			"pop3": "https://outlook.office365.com/POP.AccessAsUser.All offline_access",
		},
	}
)

// All lists the known providers.
var All = []*Provider{Gmail, Microsoft365}

// Names is the list of provider names for messages: "gmail" or
// "microsoft365".
func Names() string {
	var q []string
	for _, p := range All {
		q = append(q, `"`+p.Name+`"`)
	}
	return strings.Join(q, " or ")
}

// Lookup returns the provider called name, nil when there is none.
func Lookup(name string) *Provider {
	for _, p := range All {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Detect returns the provider whose servers host is, nil when none.
func Detect(host string) *Provider {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range All {
		for _, h := range p.Hosts {
			if h == host {
				return p
			}
		}
	}
	return nil
}

// Endpoint fills tenant into an endpoint template ("" stays "").
func Endpoint(template, tenant string) string {
	return strings.ReplaceAll(template, "{tenant}", tenant)
}
