package bearer

import (
	"strings"
	"testing"
)

func TestInitialResponses(t *testing.T) {
	if got, want := string(XOAuth2("a@b.example", "tok")), "user=a@b.example\x01auth=Bearer tok\x01\x01"; got != want {
		t.Errorf("XOAuth2 = %q, want %q", got, want)
	}
	if got, want := string(OAuthBearer("a=b,c", "tok")), "n,a=a=3Db=2Cc,\x01auth=Bearer tok\x01\x01"; got != want {
		t.Errorf("OAuthBearer = %q, want %q", got, want)
	}
}

func TestChallengeStatus(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"status":"401","schemes":"bearer","scope":"mail"}`, "401"},
		{`{"status":"invalid_token"}`, "invalid_token"},
		{`not json`, ""},
		{`{"status":"a\u0007b\nc"}`, "abc"},
		{`{"status":"` + strings.Repeat("x", 100) + `"}`, strings.Repeat("x", 64)},
	}
	for _, tc := range tests {
		if got := ChallengeStatus([]byte(tc.in)); got != tc.want {
			t.Errorf("ChallengeStatus(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzChallengeStatus(f *testing.F) {
	f.Add([]byte(`{"status":"401"}`))
	f.Add([]byte(`{"status":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := ChallengeStatus(b)
		if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("ChallengeStatus(%q) = %q: too long or not printable", b, s)
		}
	})
}
