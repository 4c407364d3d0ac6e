package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mailferry/mailferry/account"
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

// login says how one side logs in: the MAILFERRY_<SIDE>_PASSWORD
// variable, the file or the command (read by the account package when the
// side first connects, so that a failing command fails the account, not
// the command line), or a prompt when stdin is a terminal.
func (p passwordFlags) login(e *env, what string) (account.Login, error) {
	envVar := "MAILFERRY_" + strings.ToUpper(p.side) + "_PASSWORD"
	set := 0
	for _, s := range []string{e.getenv(envVar), p.file, p.command} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return account.Login{}, usagef("conflicting %s passwords: use only one of %s, --%s-password-file and --%s-password-command",
			p.side, envVar, p.side, p.side)
	}
	if v := e.getenv(envVar); v != "" {
		return account.Login{Password: secret.New(v)}, nil
	}
	label := "source password"
	if p.side == "dest" {
		label = "destination password"
	}
	switch {
	case p.file != "":
		return account.Login{Secret: config.SecretSource{File: p.file}, What: label + " (--" + p.side + "-password-file)"}, nil
	case p.command != "":
		return account.Login{Secret: config.SecretSource{Command: p.command}, What: label + " (--" + p.side + "-password-command)"}, nil
	}
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(e.stderr, "Password for %s: ", what)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return account.Login{}, fmt.Errorf("reading the %s password: %w", p.side, err)
		}
		return account.Login{Password: secret.New(string(b))}, nil
	}
	return account.Login{}, usagef("no %s password: set %s, or use --%s-password-file or --%s-password-command",
		p.side, envVar, p.side, p.side)
}

// loginOrOAuth2 is login, or, when the side's --source-oauth2 or
// --dest-oauth2 gave oauth2 keys (kv), a login with tokens from that grant
// for the user of url (the SOURCE or DEST argument): no password is asked for then, and the side's password
// flags are refused (the token comes from the grant).
func (p passwordFlags) loginOrOAuth2(e *env, what, url string, kv map[string]string) (account.Login, error) {
	if len(kv) == 0 {
		return p.login(e, what)
	}
	flag := "--" + p.side + "-oauth2"
	if p.file != "" || p.command != "" {
		return account.Login{}, usagef("%s and --%s-password-file or --%s-password-command exclude each other: the token comes from the grant",
			flag, p.side, p.side)
	}
	srv, err := config.OAuth2Flag(flag, url, kv)
	if err != nil {
		return account.Login{}, err
	}
	return account.Login{OAuth2: srv, What: flag}, nil
}
