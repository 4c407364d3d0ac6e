// Package account turns one account to move into what the engine runs. An
// account comes from the config file (an [[account]] with the server
// sections it overrides, FromConfig) or from the two URLs of `mailferry
// copy` and the command's flags (FromURLs); either way it becomes an
// *Account: its ledger key, the pipeline.Options of its copy (policies,
// folder mapping, flag sync, deletion), and openers of its sessions —
// the source, the destination, the read-only destination of verify and
// plan, the IDLE watcher of the service. copy, run, plan, verify and
// status all build their accounts here, so that they agree on every rule.
//
// The order of effects:
//
//  1. Assembling (FromConfig, FromURLs) reads the TLS CA files and warns,
//     once per server, when certificates are not verified. A side with an
//     oauth2 grant gets its token source (package oauthtoken), shared by
//     the accounts whose logins are alike; the key, certificate or token
//     file is read now. It connects to nothing, asks no token endpoint and
//     runs no password command; its errors are configuration errors.
//  2. Opening a session first takes its connection slots (max_connections,
//     per server; see internal/connlimit): an attempt of the engine opens
//     its source and destination in one step (Account.Open, pipeline.Job's
//     Open) and takes all their slots at once; extra destination sessions
//     only take slots that are free (ErrNoSlot otherwise).
//  3. Then the password: the first session of a side reads it (a password
//     file, command or variable; a master user's once per Set for every
//     account that uses it) and keeps it for the later sessions; an OAuth2
//     token is read again for every session (a grant's from its cache,
//     fetched anew before it expires). A secret that cannot be read fails
//     that account alone (*SecretError, fatal), never the others; so does
//     a token endpoint that refuses the grant (*oauthtoken.Error).
//     CheckTokens fetches the grants' tokens without connecting (plan).
//  4. Then the adapter (pop3src, imapsrc, imapdst) dials and logs in. The
//     session gives its slots back when it is closed (the adapters'
//     OnClose), so the engine always holds the adapter's own session and
//     every optional interface it has. A token the server rejects is
//     dropped from the grant's cache and the login tried once more with a
//     fresh one (the adapters' TokenRejected); a server that refuses the
//     fresh one too gives a *TokenRefusedError, whose Hint names the
//     provider's setting to check.
package account
