package dovecot

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/oauthserver"
)

// Introspector is an OAuth 2.0 token introspection endpoint (RFC 7662)
// for a test Dovecot's oauth2 passdb (Options.OAuth2IntrospectionURL) that
// knows a fixed set of tokens: it answers "active" with the user for the
// tokens it holds, and "inactive" for any other, like an authorization
// server after a token expired. It is oauthserver's endpoint over a map;
// tests of the grants use an oauthserver.Server, which introspects the
// tokens it issued.
type Introspector struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens map[string]string
}

// StartIntrospector serves tokens (token → user) on 127.0.0.1 until the
// test ends.
func StartIntrospector(t testing.TB, tokens map[string]string) *Introspector {
	t.Helper()
	in := &Introspector{}
	in.Set(tokens)
	in.srv = httptest.NewServer(in)
	t.Cleanup(in.srv.Close)
	return in
}

// URL is the endpoint, as Options.OAuth2IntrospectionURL wants it.
func (in *Introspector) URL() string { return in.srv.URL + "/" }

// Set replaces the valid tokens (a rotation: the old ones stop working).
func (in *Introspector) Set(tokens map[string]string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.tokens = make(map[string]string, len(tokens))
	for k, v := range tokens {
		in.tokens[k] = v
	}
}

func (in *Introspector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	oauthserver.IntrospectionHandler(in.lookup).ServeHTTP(w, r)
}

func (in *Introspector) lookup(token string) (oauthserver.Introspection, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	user, ok := in.tokens[token]
	return oauthserver.Introspection{Username: user}, ok
}
