package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	const pw = "hunter2-very-secret"
	v := New(pw)
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("login", "password", v)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("login", "password", v)
	js, err := json.Marshal(struct{ P Value }{v})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", v),
		"%s":   fmt.Sprintf("%s", v),
		"%+v":  fmt.Sprintf("%+v", struct{ P Value }{v}),
		"%#v":  fmt.Sprintf("%#v", v),
		"slog": logBuf.String(),
		"json": string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, pw) {
			t.Errorf("%s output %q reveals the secret", name, out)
		}
		if !strings.Contains(out, "***") {
			t.Errorf("%s output %q lacks the redaction marker", name, out)
		}
	}
	if v.Reveal() != pw {
		t.Errorf("Reveal() = %q, want %q", v.Reveal(), pw)
	}
}
