package imapdst

import (
	"context"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/secret"
)

// dialDovecot opens a Destination on a test Dovecot's IMAPS listener as
// user, closed when the test ends.
func dialDovecot(t *testing.T, srv *dovecot.Server, user, password string) *Destination {
	t.Helper()
	d, err := Dial(context.Background(), Options{
		Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
		User: user, Password: secret.New(password), IdleTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
