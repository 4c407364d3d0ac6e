package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/oauthtoken"
)

const loginHelp = `mailferry login - sign in once for accounts that use the device grant

USAGE
  mailferry login -c migrate.toml [--only NAME]... [--side source|destination] [--force]

Accounts whose [source] or [destination] logs in with
  oauth2 = { grant = "device", client_id = "...", token_file = "tokens/{user}.token" }
need a user to sign in once, in a browser on any computer: mailferry login
asks the provider's device authorization endpoint for a code (RFC 8628),
prints the address to open and the code to enter, and waits while the user
signs in and approves the access. It then stores the refresh token in the
account's token_file (mode 0600; {user} is the account's user), and later
runs (run, copy, plan, verify) obtain fresh access tokens from it silently.
A provider that rotates refresh tokens gets the new one written back.

Accounts whose token file already holds a refresh token are skipped unless
--force is given (sign in again, e.g. after the token was revoked or the
user's password changed). Accounts that use other grants need no sign-in and
are not listed.

FLAGS
  -c, --config FILE   the config file (required)
      --only NAME     sign in only these accounts (by name; repeat or
                      separate with commas)
      --side SIDE     only the source or only the destination
      --force         sign in again even when a refresh token is stored

OUTPUT
  The address and the code go to stderr, one account after the other, with
  the time the code expires. stdout gets one line per account:
  "NAME source: signed in, refresh token in FILE" (or "already signed in").
  Tokens are never printed.

EXIT STATUS
  0    every account asked for is signed in
  1    a sign-in failed (denied, the code expired, the endpoint refused or
       could not be reached); the message says what to check
  2    bad command line or configuration, or no account uses the device grant

EXAMPLES
  mailferry login -c migrate.toml
  mailferry login -c migrate.toml --only alice@contoso.com --force
`

func runLogin(ctx context.Context, args []string, e *env) (int, error) {
	var cfgPath, side string
	var only []string
	var force bool
	fs := pflag.NewFlagSet("login", pflag.ContinueOnError)
	fs.StringVarP(&cfgPath, "config", "c", "", "the config file")
	fs.StringSliceVar(&only, "only", nil, "sign in only these accounts")
	fs.StringVar(&side, "side", "", "source or destination")
	fs.BoolVar(&force, "force", false, "sign in again even when a refresh token is stored")
	if done, err := parseFlags(fs, args, e, loginHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if fs.NArg() != 0 {
		return exitUsage, usagef("unexpected arguments %q (accounts come from the config file)", fs.Args())
	}
	if side != "" && side != "source" && side != "destination" {
		return exitUsage, usagef("--side must be source or destination, not %q", side)
	}
	log := newLogger(&commonOptions{logFormat: "text"}, e.stderr)
	cfg, err := loadConfig(cfgPath, log)
	if err != nil {
		return exitUsage, err
	}
	selected, err := account.Select(cfg, only)
	if err != nil {
		return exitUsage, usagef("--only: %v", err)
	}
	type job struct {
		name, side string
		cfg        oauthtoken.Config
	}
	var jobs []job
	for _, a := range selected {
		// The users the copy logs in as (dest_user defaults to
		// source_user): the token file's {user}.
		srcEp, srcErr := cfg.SourceEndpoint(a)
		dstEp, dstErr := cfg.DestEndpoint(a)
		if err := errors.Join(srcErr, dstErr); err != nil {
			return exitUsage, fmt.Errorf("account %q: %w", a.Name, err)
		}
		for _, sd := range []struct {
			name string
			srv  *config.Server
			user string
		}{{"source", &cfg.SourceFor(a).Server, srcEp.User}, {"destination", &cfg.DestinationFor(a).Server, dstEp.User}} {
			if side != "" && side != sd.name || sd.srv.OAuth2 == nil || sd.srv.OAuth2.Grant != oauthtoken.Device {
				continue
			}
			jobs = append(jobs, job{name: a.Name, side: sd.name, cfg: account.TokenConfig(sd.srv, sd.user, a.Name, log)})
		}
	}
	if len(jobs) == 0 {
		return exitUsage, usagef("no account of %s logs in with oauth2 grant = \"device\"", cfgPath)
	}
	failed := 0
	for _, j := range jobs {
		if _, err := oauthtoken.ReadTokenFile(j.cfg.TokenFile); err == nil && !force {
			fmt.Fprintf(e.stdout, "%s %s: already signed in, refresh token in %s\n", j.name, j.side, j.cfg.TokenFile)
			continue
		}
		err := oauthtoken.DeviceLogin(ctx, j.cfg, func(p oauthtoken.DevicePrompt) {
			fmt.Fprintf(e.stderr, "\nTo sign in %s (%s), open\n    %s\nand enter the code\n    %s\n", j.name, j.side, p.URL, p.Code)
			if !p.Expires.IsZero() {
				fmt.Fprintf(e.stderr, "before %s. Waiting…\n", p.Expires.Local().Format(time.Kitchen))
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return exitInterrupted, err
			}
			failed++
			fmt.Fprintf(e.stderr, "mailferry login: %s %s: %v\n", j.name, j.side, err)
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s: signed in, refresh token in %s\n", j.name, j.side, j.cfg.TokenFile)
	}
	if failed > 0 {
		return exitFatal, fmt.Errorf("%d of %d sign-ins failed", failed, len(jobs))
	}
	return exitOK, nil
}
