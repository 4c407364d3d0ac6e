package dovecot

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Introspector is an OAuth 2.0 token introspection endpoint (RFC 7662)
// for a test Dovecot's oauth2 passdb (Options.OAuth2IntrospectionURL): it
// answers "active" with the user for the tokens it holds, and "inactive"
// for any other, like an authorization server after a token expired.
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
	_ = r.ParseForm()
	in.mu.Lock()
	user, ok := in.tokens[r.Form.Get("token")]
	in.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "username": user})
}
