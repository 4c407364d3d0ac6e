package bearer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/secret"
)

func TestWithFreshToken(t *testing.T) {
	rejection := fmt.Errorf("logging in: %w", &RejectedError{Command: "AUTHENTICATE", Mechanism: "XOAUTH2", Status: "401"})
	refused := errors.New("NO [AUTHENTICATIONFAILED]")
	getFailed := errors.New("token endpoint down")
	tests := []struct {
		name string
		// accept says what the server does with each token: nil accepts.
		accept      map[string]error
		noHook      bool
		getFailsAt  int // 1-based call of get that fails; 0: none
		wantErr     error
		wantRej     bool // a *RejectedError is returned
		wantLogins  []string
		wantDropped []string
	}{
		{name: "accepted at once", accept: map[string]error{"t1": nil},
			wantLogins: []string{"t1"}},
		{name: "rejected, then the fresh token accepted", accept: map[string]error{"t1": rejection, "t2": nil},
			wantLogins: []string{"t1", "t2"}, wantDropped: []string{"t1"}},
		{name: "rejected twice: one retry only", accept: map[string]error{"t1": rejection, "t2": rejection},
			wantRej: true, wantLogins: []string{"t1", "t2"}, wantDropped: []string{"t1"}},
		{name: "no hook: no retry", accept: map[string]error{"t1": rejection}, noHook: true,
			wantRej: true, wantLogins: []string{"t1"}},
		{name: "a refused password is not retried", accept: map[string]error{"t1": refused},
			wantErr: refused, wantLogins: []string{"t1"}},
		{name: "get fails first", getFailsAt: 1, wantErr: getFailed},
		{name: "get fails for the retry", accept: map[string]error{"t1": rejection}, getFailsAt: 2,
			wantErr: getFailed, wantLogins: []string{"t1"}, wantDropped: []string{"t1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gets := 0
			get := func(context.Context) (secret.Value, error) {
				gets++
				if gets == tc.getFailsAt {
					return secret.Value{}, getFailed
				}
				return secret.New(fmt.Sprintf("t%d", gets)), nil
			}
			var dropped, logins []string
			hook := func(tok secret.Value) { dropped = append(dropped, tok.Reveal()) }
			if tc.noHook {
				hook = nil
			}
			got, err := WithFreshToken(t.Context(), "alice for mail.example.com:993", get, hook, func(tok secret.Value) (string, error) {
				logins = append(logins, tok.Reveal())
				if err := tc.accept[tok.Reveal()]; err != nil {
					return "", err
				}
				return "session with " + tok.Reveal(), nil
			})
			var rej *RejectedError
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			case tc.wantRej && !errors.As(err, &rej):
				t.Errorf("err = %v, want a *RejectedError", err)
			case tc.wantErr == nil && !tc.wantRej && err != nil:
				t.Errorf("err = %v, want a session", err)
			case err == nil && got != "session with "+logins[len(logins)-1]:
				t.Errorf("session = %q, not the last login's (%v)", got, logins)
			}
			if !slices.Equal(logins, tc.wantLogins) {
				t.Errorf("logins with %v, want %v", logins, tc.wantLogins)
			}
			if !slices.Equal(dropped, tc.wantDropped) {
				t.Errorf("rejected called with %v, want %v", dropped, tc.wantDropped)
			}
		})
	}
}
