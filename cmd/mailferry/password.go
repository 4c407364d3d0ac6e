package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/secret"
)

// passwordFlags says where one side's password comes from on the command
// line. Passwords are never command-line arguments: only a variable, a
// file, a command, or a prompt.
type passwordFlags struct {
	side    string // "source" or "dest"
	file    string
	command string
}

// resolve finds the password: the MAILFERRY_<SIDE>_PASSWORD variable, the
// file, the command, or a prompt when stdin is a terminal.
func (p passwordFlags) resolve(ctx context.Context, e *env, what string) (secret.Value, error) {
	envVar := "MAILFERRY_" + strings.ToUpper(p.side) + "_PASSWORD"
	set := 0
	for _, s := range []string{e.getenv(envVar), p.file, p.command} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return secret.Value{}, usagef("conflicting %s passwords: use only one of %s, --%s-password-file and --%s-password-command",
			p.side, envVar, p.side, p.side)
	}
	src := config.SecretSource{File: p.file, Command: p.command}
	if v := e.getenv(envVar); v != "" {
		return secret.New(v), nil
	}
	if !src.IsZero() {
		v, _, err := src.Resolve(ctx)
		if err != nil {
			return secret.Value{}, fmt.Errorf("reading the %s password: %w", p.side, err)
		}
		return v, nil
	}
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(e.stderr, "Password for %s: ", what)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return secret.Value{}, fmt.Errorf("reading the %s password: %w", p.side, err)
		}
		return secret.New(string(b)), nil
	}
	return secret.Value{}, usagef("no %s password: set %s, or use --%s-password-file or --%s-password-command",
		p.side, envVar, p.side, p.side)
}

// tokenFunc returns the passwordFunc of a side that logs in with auth: an
// OAuth2 token from the file or the command is read again for every
// connection (tokens expire during long runs); what names it in errors.
// It returns nil for passwords, and for tokens from the variable or a
// prompt, which stay as resolve gave them.
func (p passwordFlags) tokenFunc(auth config.Auth, e *env, what string, log *slog.Logger) func(context.Context) (secret.Value, error) {
	if !auth.IsOAuth2() || p.file == "" && p.command == "" || e.getenv("MAILFERRY_"+strings.ToUpper(p.side)+"_PASSWORD") != "" {
		return nil
	}
	return tokenFunc(config.SecretSource{File: p.file, Command: p.command}, what, log)
}
