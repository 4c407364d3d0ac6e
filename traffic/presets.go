package traffic

import "strings"

// Preset is what a hosted provider is known to allow one user: the
// defaults of max_connections_per_user and of the daily quotas when the
// config leaves them out. Zero fields: not known.
type Preset struct {
	Provider string // "gmail", "microsoft365"
	// MaxConnectionsPerUser is the provider's limit of simultaneous IMAP
	// connections of one user.
	MaxConnectionsPerUser int
	// ReadBytesPerDay and WrittenBytesPerDay are the provider's daily IMAP
	// transfer limits: downloaded from it (it is the source), uploaded to
	// it (it is the destination).
	ReadBytesPerDay, WrittenBytesPerDay int64
}

// presets are the providers whose limits are known, by the hosts of their
// servers. This table belongs with the provider profiles (package
// provider: one config key names a server family, DECISIONS.md), and
// moves there when that package lands; the hosts are the same.
var presets = []struct {
	hosts []string
	Preset
}{
	{
		// Gmail: "Too many simultaneous connections" above 15 IMAP
		// connections per account; the IMAP bandwidth limits of Google
		// Workspace are 2,500 MB a day downloaded and 500 MB uploaded.
		hosts:  []string{"imap.gmail.com", "imap.googlemail.com", "pop.gmail.com", "pop.googlemail.com"},
		Preset: Preset{Provider: "gmail", MaxConnectionsPerUser: 15, ReadBytesPerDay: 2500e6, WrittenBytesPerDay: 500e6},
	},
	{
		// Exchange Online: 20 concurrent IMAP (and POP3) connections per
		// mailbox; no published daily transfer limit.
		hosts:  []string{"outlook.office365.com", "outlook.office.com"},
		Preset: Preset{Provider: "microsoft365", MaxConnectionsPerUser: 20},
	},
}

// PresetFor returns the preset of the provider whose server host is; the
// zero Preset when none is known.
func PresetFor(host string) Preset {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range presets {
		for _, h := range p.hosts {
			if h == host {
				return p.Preset
			}
		}
	}
	return Preset{}
}
