package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadUIAndNotifyKeys: ui_addr, ui_actions, ui_token_file (relative to
// the file), notify_webhook and notify_command are read, and bad values
// are errors naming the key without repeating a webhook URL.
func TestLoadUIAndNotifyKeys(t *testing.T) {
	tests := []struct {
		name    string
		top     string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{"defaults", "", func(t *testing.T, c *Config) {
			if c.UIAddr != "" || c.UIActions || c.UITokenFile != "" || c.NotifyWebhook != "" || c.NotifyCommand != "" {
				t.Errorf("defaults: %q %v %q %q %q", c.UIAddr, c.UIActions, c.UITokenFile, c.NotifyWebhook, c.NotifyCommand)
			}
		}, ""},
		{"all set", "ui_addr = \"127.0.0.1:8080\"\nui_actions = true\nui_token_file = \"ui.token\"\n" +
			"notify_webhook = \"https://hooks.example/T0/secret-path\"\nnotify_command = \"logger -t mailferry\"\n",
			func(t *testing.T, c *Config) {
				if c.UIAddr != "127.0.0.1:8080" || !c.UIActions || c.UITokenFile != filepath.Join(filepath.Dir(c.File), "ui.token") ||
					c.NotifyWebhook != "https://hooks.example/T0/secret-path" || c.NotifyCommand != "logger -t mailferry" {
					t.Errorf("all set: %q %v %q %q %q", c.UIAddr, c.UIActions, c.UITokenFile, c.NotifyWebhook, c.NotifyCommand)
				}
			}, ""},
		{"port alone", "ui_addr = \"8080\"\n", func(t *testing.T, c *Config) {}, ""},
		{"bad ui_addr", "ui_addr = \"localhost\"\n", nil, "ui_addr must be host:port"},
		{"webhook not http", "notify_webhook = \"ftp://x/secret-path\"\n", nil, "notify_webhook must be an http"},
		{"webhook without host", "notify_webhook = \"https:///secret-path\"\n", nil, "notify_webhook must be an http"},
		{"ui_actions not a bool", "ui_actions = \"yes\"\n", nil, "ui_actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load(writeConfig(t, tt.top+minimal))
			if err == nil {
				err = c.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load+Validate(%q) = %v, want an error containing %q", tt.top, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret-path") {
					t.Errorf("the error repeats the webhook URL: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load+Validate(%q) = %v", tt.top, err)
			}
			tt.check(t, c)
		})
	}
}
