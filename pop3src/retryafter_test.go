package pop3src

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

var _ pipeline.RetryAfterer = (*ResponseError)(nil)

func TestResponseErrorRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		err  *ResponseError
		want time.Duration
	}{
		{name: "LOGIN-DELAY with a known delay", err: &ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY", LoginDelay: 900 * time.Second}, want: 900 * time.Second},
		{name: "code is case-insensitive", err: &ResponseError{Command: "PASS ***", Code: "login-delay", LoginDelay: time.Minute}, want: time.Minute},
		{name: "LOGIN-DELAY without a known delay", err: &ResponseError{Command: "AUTH PLAIN ***", Code: "LOGIN-DELAY"}, want: 0},
		{name: "absurd delay is capped", err: &ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY", LoginDelay: 48 * time.Hour}, want: time.Hour},
		{name: "negative delay is none", err: &ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY", LoginDelay: -time.Second}, want: 0},
		{name: "IN-USE does not say", err: &ResponseError{Command: "PASS ***", Code: "IN-USE", LoginDelay: time.Minute}, want: 0},
		{name: "SYS/TEMP does not say", err: &ResponseError{Command: "RETR 1", Code: "SYS/TEMP"}, want: 0},
		{name: "no code", err: &ResponseError{Command: "PASS ***", Text: "wait"}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.RetryAfter(); got != tc.want {
				t.Errorf("RetryAfter() = %v, want %v", got, tc.want)
			}
			var ra pipeline.RetryAfterer
			wrapped := fmt.Errorf("logging in to %s: %w", "pop.example", tc.err)
			if !errors.As(wrapped, &ra) || ra.RetryAfter() != tc.want {
				t.Errorf("errors.As(wrapped) did not give RetryAfter %v", tc.want)
			}
		})
	}
}

// TestLoginDelayFromCapa checks that a -ERR [LOGIN-DELAY] carries the delay
// the pre-login CAPA announced (RFC 2449 §6.5, §8.1.1).
func TestLoginDelayFromCapa(t *testing.T) {
	tests := []struct {
		name     string
		capa     string // CAPA reply
		want     time.Duration
		wantCaps bool // Capabilities.LoginDelay ok
	}{
		{name: "announced", capa: "+OK\r\nUSER\r\nLOGIN-DELAY 900\r\n.\r\n", want: 900 * time.Second, wantCaps: true},
		{name: "announced with USER (varies per user)", capa: "+OK\r\nUSER\r\nLOGIN-DELAY 60 USER\r\n.\r\n", want: time.Minute, wantCaps: true},
		{name: "not announced", capa: "+OK\r\nUSER\r\n.\r\n", want: 0},
		{name: "not a number", capa: "+OK\r\nUSER\r\nLOGIN-DELAY soon\r\n.\r\n", want: 0},
		{name: "no CAPA", capa: "-ERR unknown command\r\n", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, wait := scripted(t, plain,
				step{reply: "+OK ready\r\n"},
				step{want: "CAPA\r\n", reply: tc.capa},
				step{want: "USER alice\r\n", reply: "+OK\r\n"},
				step{want: "PASS s3cret\r\n", reply: "-ERR [LOGIN-DELAY] logged in too recently\r\n"},
			)
			ctx := context.Background()
			caps, _ := c.Capa(ctx) // a -ERR leaves caps nil, which is valid
			if _, ok := caps.LoginDelay(); ok != tc.wantCaps {
				t.Errorf("Capabilities.LoginDelay ok = %v, want %v", ok, tc.wantCaps)
			}
			if got := c.LoginDelay(); got != tc.want {
				t.Errorf("Client.LoginDelay() = %v, want %v", got, tc.want)
			}
			err := c.Login(ctx, "alice", secret.New("s3cret"))
			var re *ResponseError
			if !errors.As(err, &re) || re.Code != "LOGIN-DELAY" {
				t.Fatalf("Login: %v, want a -ERR [LOGIN-DELAY]", err)
			}
			if got := re.RetryAfter(); got != tc.want {
				t.Errorf("RetryAfter() = %v, want %v", got, tc.want)
			}
			if pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Errorf("class of %v = %v, want transient", err, pipeline.ClassOf(err))
			}
			wait()
		})
	}
}
