package imapconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
)

// ErrNoStartTLS: STARTTLS was asked for and the server does not offer it
// (its capabilities lack it, or it refused the command). Fatal: nothing
// was sent in clear text.
var ErrNoStartTLS = errors.New("imapconn: server does not offer STARTTLS")

// maxPreTLSLine bounds a line read before the TLS handshake.
const maxPreTLSLine = 64 << 10

// startTLSTag is the tag of our STARTTLS. go-imap numbers its own commands
// from T1 on the secured connection, so tags stay unique.
const startTLSTag = "T0"

// greeting is the server's first response (RFC 3501 §7.1).
type greeting struct {
	line                        string // without CRLF
	status, code, codeArg, text string
}

// readGreeting reads the greeting from br: OK or PREAUTH; a BYE (the
// server will not talk to us now) is a transient error with its text.
func readGreeting(br *bufio.Reader, addr string) (greeting, error) {
	line, err := readLine(br)
	if err != nil {
		return greeting{}, pipeline.Transient(fmt.Errorf("imapconn: reading the greeting of %s: %w", addr, err))
	}
	g := greeting{line: line}
	g.status, g.code, g.codeArg, g.text = parseStatus(line, "*")
	switch g.status {
	case "OK", "PREAUTH":
		return g, nil
	case "BYE":
		return g, pipeline.Transient(fmt.Errorf("imapconn: %s said %q instead of a greeting", addr, truncate(line)))
	}
	if err := dialer.Unexpected(addr, dialer.IMAP, line); err != nil {
		return g, fmt.Errorf("imapconn: %w", err) // POP3 at an IMAP URL's port, say
	}
	return g, fmt.Errorf("imapconn: unexpected greeting from %s: %q", addr, truncate(line))
}

// startTLS upgrades the connection with STARTTLS (RFC 3501 §6.2.1) after
// the greeting g was read from br, which reads ic, and returns the TLS
// conn and the greeting go-imap should read as the first bytes on it. It
// is done here rather than by go-imap's NewStartTLS because go-imap's
// reader must not start before setLiteralCheck (see there), and
// NewStartTLS starts it and reads replies before returning.
//
// The greeting is handed on without a CAPABILITY response code:
// capabilities seen before TLS may have been tampered with and must be
// asked for again (RFC 3501 §6.2.1), which go-imap then does.
func startTLS(ctx context.Context, ic net.Conn, br *bufio.Reader, addr string, cfg *tls.Config, g greeting, tlsTimeout time.Duration) (net.Conn, []byte, error) {
	if g.status == "PREAUTH" {
		// RFC 9051 §6.2.1: a client that requires TLS must not use a
		// PREAUTH session on a clear-text connection.
		return nil, nil, pipeline.Fatal(fmt.Errorf("imapconn: %s sent PREAUTH on a clear-text connection, refusing it", addr))
	}
	if g.code == "CAPABILITY" && !hasWord(g.codeArg, "STARTTLS") {
		return nil, nil, pipeline.Fatal(fmt.Errorf("imapconn: connecting to %s: %w", addr, ErrNoStartTLS))
	}
	if _, err := io.WriteString(ic, startTLSTag+" STARTTLS\r\n"); err != nil {
		return nil, nil, fmt.Errorf("imapconn: sending STARTTLS to %s: %w", addr, err)
	}
	for {
		reply, err := readLine(br)
		if err != nil {
			return nil, nil, fmt.Errorf("imapconn: reading the reply to STARTTLS from %s: %w", addr, err)
		}
		if st, _, _, _ := parseStatus(reply, "*"); st == "BYE" {
			return nil, nil, pipeline.Transient(fmt.Errorf("imapconn: %s said %q after STARTTLS", addr, truncate(reply)))
		}
		st, _, _, _ := parseStatus(reply, startTLSTag)
		if st == "" {
			continue // untagged data, e.g. CAPABILITY
		}
		if st != "OK" {
			return nil, nil, pipeline.Fatal(fmt.Errorf("imapconn: connecting to %s: %w (it said %q)", addr, ErrNoStartTLS, truncate(reply)))
		}
		break
	}
	// Anything the server sent after its OK arrived in clear text and could
	// have been injected (RFC 2595 §3.1: discard it); refuse instead.
	if br.Buffered() > 0 {
		return nil, nil, pipeline.Fatal(fmt.Errorf("imapconn: %s sent data after STARTTLS OK before the TLS handshake", addr))
	}
	var tc *tls.Conn
	err := dialer.Run(ctx, ic, dialer.StepTLS, addr, tlsTimeout, false, func(ctx context.Context) (err error) {
		tc, err = tlsmode.Handshake(ctx, ic, cfg)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("imapconn: TLS handshake with %s after STARTTLS: %w", addr, err)
	}
	replay := "* OK " + g.text + "\r\n"
	if g.code != "" && g.code != "CAPABILITY" {
		replay = g.line + "\r\n"
	}
	return tc, []byte(replay), nil
}

// readLine reads a line up to CRLF (or a bare LF) and returns it without.
func readLine(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxPreTLSLine {
			return "", fmt.Errorf("line longer than %d bytes", maxPreTLSLine)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	return string(bytes.TrimRight(line, "\r\n")), nil
}

// parseStatus parses line as a status response (RFC 3501 §7.1) with tag:
// the status (OK, NO, BAD, BYE, PREAUTH; "" when line is not one), the
// response code and its arguments, and the text.
func parseStatus(line, tag string) (status, code, codeArg, text string) {
	rest, ok := strings.CutPrefix(line, tag+" ")
	if !ok {
		return "", "", "", ""
	}
	word, rest, _ := strings.Cut(rest, " ")
	switch status = strings.ToUpper(word); status {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
	default:
		return "", "", "", ""
	}
	code, codeArg, text = ParseRespText(rest)
	return status, code, codeArg, text
}

// ParseRespText splits resp-text (RFC 3501 §9: the rest of a status
// response or a continuation request) into the response code in upper case,
// its arguments and the human-readable text. A "[" without "]" is text.
// resp-text holds no literals (RFC 3501 §7.1): a trailing "{5}" is text.
func ParseRespText(s string) (code, arg, text string) {
	if !strings.HasPrefix(s, "[") {
		return "", "", s
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return "", "", s
	}
	code, arg, _ = strings.Cut(s[1:end], " ")
	return strings.ToUpper(code), arg, strings.TrimPrefix(s[end+1:], " ")
}

// hasWord reports whether the space-separated list s holds w,
// case-insensitively.
func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
