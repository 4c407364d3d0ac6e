// Package secret holds credentials so that they cannot leak by accident: a
// Value prints as "***" through fmt, slog and encoding/json. Only Reveal gives
// the text, and only protocol code that sends it to a server calls it.
package secret

import (
	"encoding/json"
	"log/slog"
)

// Value is a password or token.
type Value struct {
	s string
}

// New wraps s.
func New(s string) Value { return Value{s: s} }

// Reveal returns the secret text. Call it only to send it to a server.
func (v Value) Reveal() string { return v.s }

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return v.s == "" }

const redacted = "***"

// String implements fmt.Stringer without revealing the secret.
func (v Value) String() string { return redacted }

// GoString implements fmt.GoStringer for %#v.
func (v Value) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (v Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText implements encoding.TextMarshaler (TOML, and %v on maps).
func (v Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }
