package provider

import "testing"

func TestDetectAndLookup(t *testing.T) {
	tests := []struct {
		host string
		want *Provider
	}{
		{"imap.gmail.com", Gmail},
		{"IMAP.GMAIL.COM.", Gmail},
		{"pop.gmail.com", Gmail},
		{"outlook.office365.com", Microsoft365},
		{"imap.example.org", nil},
	}
	for _, tc := range tests {
		if got := Detect(tc.host); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	for _, p := range All {
		if Lookup(p.Name) != p {
			t.Errorf("Lookup(%q) does not find it", p.Name)
		}
	}
	if Lookup("yahoo") != nil {
		t.Error(`Lookup("yahoo") found something`)
	}
	if got := Endpoint(Microsoft365.TokenURL, "contoso.onmicrosoft.com"); got != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" {
		t.Errorf("Endpoint = %q", got)
	}
}
