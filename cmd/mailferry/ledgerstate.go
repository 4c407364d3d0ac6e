package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
)

// statePasswordEnv is the environment variable a PostgreSQL ledger's
// password is read from when the config names no other source.
const statePasswordEnv = "MAILFERRY_STATE_PASSWORD"

// ledgerOptions are the checkpoint's options for state: for a PostgreSQL
// ledger (postgres://…) its password, from src (state_password_env,
// state_password_file) or else MAILFERRY_STATE_PASSWORD — never from the
// URL, which the ledger refuses when it holds one. A file needs none.
func ledgerOptions(ctx context.Context, e *env, state string, src config.SecretSource, log *slog.Logger) (*checkpoint.Options, error) {
	opts := &checkpoint.Options{Logger: log}
	if !checkpoint.IsPostgres(state) {
		return opts, nil
	}
	opts.LeaseTTL = e.leaseTTL
	if !src.IsZero() {
		v, _, err := src.Resolve(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the checkpoint database's password (%s): %w", src.Key("state_password"), err)
		}
		opts.Password = v.Reveal()
		return opts, nil
	}
	opts.Password = e.getenv(statePasswordEnv)
	return opts, nil
}
