package imapconn

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
)

// TestExplainBye: a server that says BYE and hangs up while a command
// waits: Explain gives the command's error the server's code and text, as
// a transient *ByeError, in every TLS mode. go-imap drops the BYE; with
// STARTTLS done by go-imap, nothing could see it above TLS.
func TestExplainBye(t *testing.T) {
	serverTLS, clientTLS := imapfake.TLSConfigs(t)
	login := func(tag string) []imapfake.Step {
		return []imapfake.Step{
			imapfake.Expect(tag + ` LOGIN "alice" "` + password + "\"\r\n"),
			imapfake.Send(tag + " OK [CAPABILITY IMAP4rev1] hi\r\n"),
		}
	}
	greet := imapfake.Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
	modes := []struct {
		mode  tlsmode.Mode
		setup []imapfake.Step // up to the login; the next command is T2
	}{
		{tlsmode.None, append([]imapfake.Step{greet}, login("T1")...)},
		{tlsmode.Implicit, append([]imapfake.Step{imapfake.StartTLS(serverTLS), greet}, login("T1")...)},
		{tlsmode.StartTLS, append([]imapfake.Step{greet,
			imapfake.Expect("T0 STARTTLS\r\n"),
			imapfake.Send("T0 OK begin TLS\r\n"),
			imapfake.StartTLS(serverTLS),
			imapfake.Expect("T1 CAPABILITY\r\n"),
			imapfake.Send("* CAPABILITY IMAP4rev1\r\nT1 OK done\r\n"),
		}, login("T2")...)},
	}
	replies := []struct {
		name  string
		reply string // to the command after the login, before the server closes
		check func(t *testing.T, err error)
	}{
		{
			name:  "BYE",
			reply: "* BYE [UNAVAILABLE] going down for maintenance\r\n",
			check: func(t *testing.T, err error) {
				var be *ByeError
				if !errors.As(err, &be) || be.Code != "UNAVAILABLE" || be.Text != "going down for maintenance" {
					t.Fatalf("Explain = %v; want a *ByeError [UNAVAILABLE] going down for maintenance", err)
				}
				if !strings.Contains(err.Error(), "BYE [UNAVAILABLE] going down for maintenance") {
					t.Errorf("error %q does not show the server's reason", err)
				}
				if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
					t.Errorf("class %v, want transient", c)
				}
			},
		},
		{
			name:  "BYE inside a literal is no BYE",
			reply: "* 1 FETCH (BODY[] {28}\r\n* BYE [UNAVAILABLE] no\r\nabc",
			check: func(t *testing.T, err error) {
				var be *ByeError
				if errors.As(err, &be) {
					t.Errorf("Explain = %v; a literal's bytes are no BYE", err)
				}
			},
		},
		{
			name:  "a NO before the BYE stays the server's answer",
			reply: "TN NO [UNAVAILABLE] not now\r\n* BYE later\r\n",
			check: func(t *testing.T, err error) {
				var ie *imap.Error
				var be *ByeError
				if !errors.As(err, &ie) || errors.As(err, &be) {
					t.Errorf("Explain = %v; want go-imap's *imap.Error of the NO, without the BYE", err)
				}
			},
		},
	}
	for _, m := range modes {
		for _, r := range replies {
			t.Run(m.mode.String()+"/"+r.name, func(t *testing.T) {
				tag := "T2"
				if m.mode == tlsmode.StartTLS {
					tag = "T3"
				}
				steps := append(append([]imapfake.Step{}, m.setup...),
					imapfake.Expect(tag+" NOOP\r\n"),
					imapfake.Send(strings.ReplaceAll(r.reply, "TN", tag)),
					imapfake.Close())
				opts := plainOptions("")
				opts.TLS = m.mode
				opts.TLSConfig = clientTLS.Clone()
				opts.TLSConfig.ServerName = "127.0.0.1"
				c, srv, err := dialScript(t, opts, steps...)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				noop := c.Client().Noop().Wait()
				if noop == nil {
					t.Fatal("NOOP answered by a server that hung up: nil error")
				}
				r.check(t, c.Explain(noop))
				if !errors.Is(c.Explain(noop), noop) {
					t.Errorf("Explain(%v) does not wrap it", noop)
				}
				if err := srv.Wait(); err != nil {
					t.Errorf("script: %v", err)
				}
			})
		}
	}
}

// TestExplainNoBye: without a BYE, Explain leaves a dropped connection's
// error as it is.
func TestExplainNoBye(t *testing.T) {
	c, _, err := dialScript(t, plainOptions(""), append(loggedIn(),
		imapfake.Expect("T2 NOOP\r\n"),
		imapfake.Close())...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	noop := c.Client().Noop().Wait()
	if noop == nil {
		t.Fatal("NOOP: nil error")
	}
	if got := c.Explain(noop); got != noop {
		t.Errorf("Explain(%v) = %v, want it unchanged", noop, got)
	}
}
