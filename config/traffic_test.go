package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTrafficKeys: the traffic keys load at every level: every account's
// (top level), an account's own, the whole run's, the server sections'
// per-user caps, from TOML and from an accounts file.
func TestTrafficKeys(t *testing.T) {
	doc := `bwlimit_read = "10M"
bwlimit_write = "Mon-Fri 08:00,2M 18:00,off Sat-Sun off"
max_messages_per_second = 20
max_bytes_per_day = "2GB"
bwlimit_read_total = "100M"
bwlimit_write_total = "50M"
max_messages_per_second_total = 0.5
max_connections_total = 40
timezone = "UTC"
accounts_file = "users.csv"
[source]
url = "imaps://imap.gmail.com"
max_connections_per_user = 10
[destination]
url = "imaps://imap.new.example"
max_connections_per_user = 3
[[account]]
source_user = "alice"
source_password_env = "A"
dest_password_env = "B"
bwlimit_write = "1M"
max_bytes_per_day_write = "off"
max_messages_per_second = "pause"
`
	doc = strings.Replace(doc, `max_messages_per_second = "pause"`, `max_messages_per_second = "Sat pause Sun off"`, 1)
	dir := t.TempDir()
	writeFile(t, dir, "users.csv", "source_user,source_password_env,dest_password_env,bwlimit_read,max_bytes_per_day_read,dest_max_connections_per_user\n"+
		"bob,A,B,3M,500MB,2\n", 0o600)
	path := writeFile(t, dir, "migrate.toml", doc, 0o600)
	c, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != (TotalLimits{"100M", "50M", "0.5"}) || c.MaxConnectionsTotal != 40 || c.Timezone != "UTC" {
		t.Errorf("run limits %+v, %d connections, zone %q", c.Total, c.MaxConnectionsTotal, c.Timezone)
	}
	if c.Source.MaxConnectionsPerUser != 10 || c.Destination.MaxConnectionsPerUser != 3 {
		t.Errorf("per-user caps %d, %d", c.Source.MaxConnectionsPerUser, c.Destination.MaxConnectionsPerUser)
	}
	alice, bob := &c.Accounts[0], &c.Accounts[1]
	if got, want := c.LimitsOf(alice), (Limits{"10M", "1M", "Sat pause Sun off", 2e9, NoQuota}); got != want {
		t.Errorf("alice's limits %+v, want %+v", got, want)
	}
	if got, want := c.LimitsOf(bob), (Limits{"3M", "Mon-Fri 08:00,2M 18:00,off Sat-Sun off", "20", 500e6, 2e9}); got != want {
		t.Errorf("bob's limits %+v, want %+v", got, want)
	}
	if c.DestinationFor(bob).MaxConnectionsPerUser != 2 || c.DestinationFor(alice).MaxConnectionsPerUser != 3 {
		t.Errorf("dest per-user caps: bob %d, alice %d", c.DestinationFor(bob).MaxConnectionsPerUser, c.DestinationFor(alice).MaxConnectionsPerUser)
	}
	if loc, err := c.Location(); err != nil || loc != time.UTC {
		t.Errorf("Location() = %v, %v", loc, err)
	}
}

// TestTrafficKeyErrors: a malformed rate or timetable is reported at the
// line and column of the character that is wrong.
func TestTrafficKeyErrors(t *testing.T) {
	tests := []struct {
		name      string
		line      string // appended to minimal's top level
		account   bool   // in the account instead
		wantLine  int
		wantCol   int
		wantMsg   string
		wantInCSV bool
	}{
		{"bad unit", `bwlimit_write = "2X"`, false, 1, 19, `bwlimit_write = "2X": at character 2: unknown unit "x"`, false},
		{"bad time in a timetable", `bwlimit_read = "Mon-Fri 08:00,2M 25:00,off"`, false, 1, 34, `"25:00" is not a time of day`, false},
		{"bad day", `bwlimit_read_total   =   "Mon-Fry 08:00,2M"`, false, 1, 31, `"Fry" is not a day`, false},
		{"bad message rate number", `max_messages_per_second = 0`, false, 1, 27, "must be above 0", false},
		{"pause at all times", `max_messages_per_second_total = "pause"`, false, 1, 34, "pause at all times", false},
		{"bad zone", `timezone = "Mars/Olympus"`, false, 1, 12, `unknown time zone "Mars/Olympus"`, false},
		{"negative total", `max_connections_total = -1`, false, 1, 1, "must not be negative", false},
		{"account's timetable", `bwlimit_write = "Mon 8:00,1M Tue 08:00,1M 09:00"`, true, 13, 48, `account "alice": bwlimit_write`, false},
		{"bad quota", `max_bytes_per_day = "lots"`, false, 1, 0, `invalid size "lots"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.line + "\n" + minimal
			if tt.account {
				doc = "\n" + minimal + "\n\n\n" + tt.line + "\n"
			}
			path := writeConfig(t, doc)
			_, _, err := Load(path)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want a *ConfigError", err)
			}
			if ce.Line != tt.wantLine || tt.wantCol != 0 && ce.Col != tt.wantCol {
				t.Errorf("error at %d:%d, want %d:%d (%v)", ce.Line, ce.Col, tt.wantLine, tt.wantCol, err)
			}
			msg := strings.ReplaceAll(err.Error(), filepath.Dir(path)+string(filepath.Separator), "")
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("Load error %q, want it to contain %q", msg, tt.wantMsg)
			}
			if tt.wantCol > 0 && !strings.HasPrefix(msg, fmt.Sprintf("migrate.toml:%d:%d: ", tt.wantLine, tt.wantCol)) {
				t.Errorf("Load error %q does not start with its position", msg)
			}
		})
	}
	// In an accounts file: the row.
	dir := t.TempDir()
	writeFile(t, dir, "users.csv", "source_user,source_password_env,dest_password_env,bwlimit_write\nbob,A,B,2Q\n", 0o600)
	path := writeFile(t, dir, "migrate.toml", "accounts_file = \"users.csv\"\n"+strings.SplitN(minimal, "[[account]]", 2)[0], 0o600)
	_, _, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "users.csv:2") || !strings.Contains(err.Error(), `unknown unit "q"`) {
		t.Errorf("accounts file: %v", err)
	}
}
