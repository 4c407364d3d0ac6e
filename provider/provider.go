// Package provider describes the hosted mail services mailferry knows by
// name: their IMAP and POP3 servers, how they want TLS, their OAuth2 token
// endpoints and the scopes each grant asks for, what they allow one user
// (connections, bytes a day) and their quirk profile. The config key
// provider = "gmail" | "microsoft365" names one, and it is detected from a
// server URL's host when the key is absent. One key names a server family
// everywhere. It holds data only: no I/O.
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
	// RefusedAppToken and RefusedUserToken say what to check when the mail
	// server refuses a token the provider's endpoint issued, for app-only
	// grants (service-account, client-credentials) and a user's sign-in
	// (device, refresh-token): the endpoint was content, so what is
	// missing is a setting of the mail service. "{P}" is the protocol as
	// the provider's settings name it ("IMAP", "POP"), "{p}" as a
	// PowerShell parameter does ("Imap", "Pop").
	RefusedAppToken, RefusedUserToken string

	// MaxConnectionsPerUser is the provider's limit of simultaneous IMAP
	// connections of one user: the default of max_connections_per_user.
	// 0: not known.
	MaxConnectionsPerUser int
	// ReadBytesPerDay and WrittenBytesPerDay are the provider's daily IMAP
	// transfer limits of one user, downloaded from it (it is the source)
	// and uploaded to it (it is the destination): the defaults of
	// max_bytes_per_day_read and _write. 0: not known.
	ReadBytesPerDay, WrittenBytesPerDay int64

	// Quirks is the server family's quirk profile: what mailferry does
	// differently with its servers.
	Quirks Quirks
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
		RefusedAppToken: "Google issued the token, so the delegation is in place; {P} access must be on for the user " +
			"(Admin console: Apps > Google Workspace > Gmail > End User Access > POP and IMAP access, for the user's organizational unit), " +
			"and the user must not be suspended",
		RefusedUserToken: "Google issued the token; {P} access must be on for the user (Admin console: Apps > Google Workspace > Gmail > " +
			"End User Access > POP and IMAP access; for a personal account, Gmail's settings) and the sign-in must have granted https://mail.google.com/",
		// "Too many simultaneous connections" above 15 IMAP connections
		// per account; the IMAP bandwidth limits of Google Workspace are
		// 2,500 MB a day downloaded and 500 MB uploaded.
		MaxConnectionsPerUser: 15,
		ReadBytesPerDay:       2500e6,
		WrittenBytesPerDay:    500e6,
		Quirks: Quirks{
			Labels:          true,
			DropsDuplicates: true,
			DailyLimit:      []string{"bandwidth limits"},
			CrawlsAtLimit:   true,
		},
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
		RefusedAppToken: "Microsoft issued the token, so the app registration and its consent are in place; in Exchange Online: " +
			"the app's service principal is registered (New-ServicePrincipal -AppId <client ID> -ObjectId <Enterprise application Object ID>), " +
			"it has permission on this mailbox (Add-MailboxPermission -User <Enterprise application Object ID> -AccessRights FullAccess), " +
			"and {P} is enabled for the mailbox (Set-CASMailbox -Identity <user> -{p}Enabled $true)",
		RefusedUserToken: "Microsoft issued the token; {P} must be enabled for the mailbox (Set-CASMailbox -Identity <user> -{p}Enabled $true) " +
			"and the token must be for this mailbox's user, with the {P}.AccessAsUser.All scope",
		// Exchange Online: 20 concurrent IMAP (and POP3) connections per
		// mailbox; no published daily transfer limit.
		MaxConnectionsPerUser: 20,
		Quirks: Quirks{
			FlagsLostAtAppend:    []string{`\Flagged`},
			CaseInsensitiveNames: true,
			// The English names; a mailbox set up in another language
			// has its own (exclude them with the folder filter).
			ReservedNames: []string{"Calendar", "Contacts", "Journal", "Notes", "Tasks", "Sync Issues"},
			MaxErrors:     10,
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

// For returns the provider a server section names (its provider key, ""
// when absent), else the one whose servers host is; nil when neither.
func For(name, host string) *Provider {
	if p := Lookup(name); p != nil {
		return p
	}
	return Detect(host)
}

// RefusedToken says what to check when the mail server refuses, over
// protocol proto ("imap" or "pop3"), a token the provider's endpoint
// issued: appOnly for the service-account and client-credentials grants.
// "" when the provider has nothing to say.
func (p *Provider) RefusedToken(appOnly bool, proto string) string {
	text := p.RefusedUserToken
	if appOnly {
		text = p.RefusedAppToken
	}
	upper, mixed := "IMAP", "Imap"
	if proto == "pop3" {
		upper, mixed = "POP", "Pop"
	}
	return strings.NewReplacer("{P}", upper, "{p}", mixed).Replace(text)
}

// Endpoint fills tenant into an endpoint template ("" stays "").
func Endpoint(template, tenant string) string {
	return strings.ReplaceAll(template, "{tenant}", tenant)
}
