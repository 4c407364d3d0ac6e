package oauthserver

import (
	"encoding/json"
	"net/http"
)

// Introspection is what the introspection endpoint says of an active
// token (RFC 7662 §2.2).
type Introspection struct {
	Username string // the user the token speaks for; Dovecot's username_attribute
	Scope    string
	ClientID string
	Expiry   int64 // exp, seconds since the epoch; 0: not said
}

// IntrospectionHandler answers RFC 7662 token introspection requests
// (POST token=…) from lookup: "active": true with the username, scope,
// client_id and exp of a token lookup knows, "active": false for any other
// (unknown, expired or revoked: §2.2 tells no difference). It is the
// endpoint of Dovecot's oauth2 passdb (introspection_mode = post) for every
// test kit.
func IntrospectionHandler(lookup func(token string) (Introspection, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		in, ok := lookup(r.Form.Get("token"))
		if !ok {
			_ = json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		// Dovecot 2.3 compares active_attribute's value as text: "true".
		resp := map[string]any{"active": true, "username": in.Username, "token_type": "Bearer"}
		if in.Scope != "" {
			resp["scope"] = in.Scope
		}
		if in.ClientID != "" {
			resp["client_id"] = in.ClientID
		}
		if in.Expiry != 0 {
			resp["exp"] = in.Expiry
		}
		_ = json.NewEncoder(w).Encode(resp)
	})
}
