package pop3src

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/pipeline"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		line string
		want status
		ok   bool
	}{
		{name: "bare OK", line: "+OK", want: status{kind: statusOK}, ok: true},
		{name: "OK with text", line: "+OK 2 320", want: status{kind: statusOK, text: "2 320"}, ok: true},
		{name: "lower case OK", line: "+ok ready", want: status{kind: statusOK, text: "ready"}, ok: true},
		{name: "bare ERR", line: "-ERR", want: status{kind: statusErr}, ok: true},
		{name: "ERR with code", line: "-ERR [IN-USE] locked", want: status{kind: statusErr, code: "IN-USE", text: "locked"}, ok: true},
		{name: "hierarchical code", line: "-ERR [SYS/TEMP] try later", want: status{kind: statusErr, code: "SYS/TEMP", text: "try later"}, ok: true},
		{name: "code only", line: "-ERR [AUTH]", want: status{kind: statusErr, code: "AUTH"}, ok: true},
		{name: "unclosed bracket is text", line: "-ERR [oops", want: status{kind: statusErr, text: "[oops"}, ok: true},
		{name: "bracket with space is text", line: "-ERR [not a code] x", want: status{kind: statusErr, text: "[not a code] x"}, ok: true},
		{name: "empty brackets are text", line: "-ERR [] x", want: status{kind: statusErr, text: "[] x"}, ok: true},
		{name: "code later in text ignored", line: "-ERR locked [IN-USE]", want: status{kind: statusErr, text: "locked [IN-USE]"}, ok: true},
		{name: "continuation empty", line: "+ ", want: status{kind: statusContinuation}, ok: true},
		{name: "continuation without space", line: "+", want: status{kind: statusContinuation}, ok: true},
		{name: "continuation with challenge", line: "+ PDE4OTYu", want: status{kind: statusContinuation, text: "PDE4OTYu"}, ok: true},
		{name: "OK glued to text", line: "+OKAY", ok: false},
		{name: "ERR glued to text", line: "-ERROR", ok: false},
		{name: "garbage", line: "* OK imap", ok: false},
		{name: "empty", line: "", ok: false},
	}
	for _, tc := range tests {
		got, ok := parseStatus(tc.line)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: parseStatus(%q) = %+v, %v; want %+v, %v", tc.name, tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"+OK", "-ERR [IN-USE] x", "+ abc", "-ERR [", "-ERR []", "+OK [A/B] c", "-err [x]y", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, ok := parseStatus(line)
		if !ok {
			if st != (status{}) {
				t.Fatalf("parseStatus(%q) = %+v with ok=false", line, st)
			}
			return
		}
		if st.code != "" {
			if strings.ContainsAny(st.code, " []") {
				t.Fatalf("parseStatus(%q): code %q contains space or bracket", line, st.code)
			}
			if !strings.Contains(line, "["+st.code+"]") {
				t.Fatalf("parseStatus(%q): code %q not in line", line, st.code)
			}
		}
		if !strings.HasSuffix(line, st.text) {
			t.Fatalf("parseStatus(%q): text %q is not the end of the line", line, st.text)
		}
	})
}

func TestResponseErrorClass(t *testing.T) {
	tests := []struct {
		name string
		err  *ResponseError
		want pipeline.Class
	}{
		{name: "AUTH code", err: &ResponseError{Command: "RETR 1", Code: "AUTH"}, want: pipeline.ClassFatal},
		{name: "SYS/PERM", err: &ResponseError{Command: "STAT", Code: "SYS/PERM"}, want: pipeline.ClassFatal},
		{name: "IN-USE on PASS", err: &ResponseError{Command: "PASS ***", Code: "IN-USE"}, want: pipeline.ClassTransient},
		{name: "LOGIN-DELAY on AUTH", err: &ResponseError{Command: "AUTH PLAIN ***", Code: "LOGIN-DELAY"}, want: pipeline.ClassTransient},
		{name: "SYS/TEMP", err: &ResponseError{Command: "PASS ***", Code: "SYS/TEMP"}, want: pipeline.ClassTransient},
		{name: "PASS without code", err: &ResponseError{Command: "PASS ***", Text: "bad password"}, want: pipeline.ClassFatal},
		{name: "AUTH without code", err: &ResponseError{Command: "AUTH PLAIN ***"}, want: pipeline.ClassFatal},
		{name: "USER without code", err: &ResponseError{Command: "USER bob"}, want: pipeline.ClassFatal},
		{name: "STLS refused", err: &ResponseError{Command: "STLS"}, want: pipeline.ClassFatal},
		{name: "RETR", err: &ResponseError{Command: "RETR 3", Text: "no such message"}, want: pipeline.ClassTransient},
		{name: "greeting", err: &ResponseError{Text: "busy"}, want: pipeline.ClassTransient},
		{name: "unknown code on PASS", err: &ResponseError{Command: "PASS ***", Code: "X-FOO"}, want: pipeline.ClassFatal},
	}
	for _, tc := range tests {
		wrapped := errors.Join(errors.New("context"), tc.err)
		if got := pipeline.ClassOf(wrapped); got != tc.want {
			t.Errorf("%s: ClassOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestResponseErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "with code", err: &ResponseError{Command: "RETR 2", Code: "IN-USE", Text: "locked"}, want: "pop3src: RETR 2: -ERR [IN-USE] locked"},
		{name: "greeting", err: &ResponseError{Text: "go away"}, want: "pop3src: greeting: -ERR go away"},
		{name: "protocol", err: &ProtocolError{Command: "LIST", Reason: "malformed scan listing", Line: "x"}, want: `pop3src: LIST: protocol violation: malformed scan listing (got "x")`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: Error() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
