package connlimit

import (
	"errors"
	"fmt"
	"testing"
)

type refuser struct{ too bool }

func (r refuser) Error() string            { return "Maximum number of connections" }
func (r refuser) TooManyConnections() bool { return r.too }

func TestRefused(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"Dovecot IMAP", errors.New("imapconn: LOGIN as alice on h:993: NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"), true},
		{"Dovecot POP3", errors.New("pop3src: PASS ***: -ERR [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=3)"), true},
		{"Gmail", errors.New("NO [ALERT] Too many simultaneous connections. (Failure)"), true},
		{"Yahoo", errors.New("NO [LIMIT] Too many simultaneous connections"), true},
		{"generic", errors.New("BYE Too many connections from this IP"), true},
		{"wrong password", errors.New("NO [AUTHENTICATIONFAILED] Authentication failed."), false},
		{"a limit of another kind", errors.New("NO [LIMIT] Too many flags"), false},
		{"an error that knows it is one", fmt.Errorf("connecting: %w", refuser{too: true}), true},
		{"an error that knows it is not one", fmt.Errorf("connecting: %w", refuser{too: false}), false},
	}
	for _, tt := range tests {
		if got := Refused(tt.err); got != tt.want {
			t.Errorf("%s: Refused(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
