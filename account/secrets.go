package account

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// SecretError is a password or token that could not be read: a password
// command that failed, a missing file or variable. It fails the account
// (pipeline.ClassFatal): trying again would run the command again for
// nothing. It never holds the secret.
type SecretError struct {
	Account string // the config's account name; "" for URLs and master passwords
	// What names the secret and where it comes from: "source password
	// (source_password_command)".
	What string
	Err  error
}

func (e *SecretError) Error() string {
	if e.Account == "" {
		return fmt.Sprintf("reading the %s: %v", e.What, e.Err)
	}
	return fmt.Sprintf("account %q: reading the %s: %v", e.Account, e.What, e.Err)
}

func (e *SecretError) Unwrap() error { return e.Err }

// ErrorClass makes a secret that cannot be read fatal for the account.
func (e *SecretError) ErrorClass() pipeline.Class { return pipeline.ClassFatal }

// secretRead reads one secret, logging its warnings (a password file
// others can read).
func secretRead(ctx context.Context, src config.SecretSource, account, what string, log *slog.Logger) (secret.Value, error) {
	v, warns, err := src.Resolve(ctx)
	for _, w := range warns {
		log.Warn(w.String())
	}
	if err != nil {
		return secret.Value{}, &SecretError{Account: account, What: what, Err: err}
	}
	return v, nil
}

// once reads a secret at its first use and keeps it; a failure is not
// kept, so the next session (the next poll of a service) tries again.
type once struct {
	mu   sync.Mutex
	v    secret.Value
	ok   bool
	read func(context.Context) (secret.Value, error)
}

func (o *once) get(ctx context.Context) (secret.Value, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ok {
		return o.v, nil
	}
	v, err := o.read(ctx)
	if err != nil {
		return secret.Value{}, err
	}
	o.v, o.ok = v, true
	return v, nil
}

// masters are the master passwords of a Set, each read once however many
// accounts use it (a password command runs once). They are keyed by where
// the password comes from, since accounts that override the server
// settings each hold their own copy of the section.
type masters struct {
	mu sync.Mutex
	m  map[config.SecretSource]*once
}

// of returns the reader of server s's master password.
func (m *masters) of(s *config.Server, section string, log *slog.Logger) *once {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.m[s.MasterPassword]; ok {
		return o
	}
	src := s.MasterPassword
	what := "master password of " + strconv.Quote(s.MasterUser) + " (" + src.Key(section+".master_password") + ")"
	o := &once{read: func(ctx context.Context) (secret.Value, error) {
		return secretRead(ctx, src, "", what, log)
	}}
	if m.m == nil {
		m.m = map[config.SecretSource]*once{}
	}
	m.m[src] = o
	return o
}
