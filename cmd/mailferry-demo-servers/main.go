// Command mailferry-demo-servers starts two private Dovecot instances for
// scripts/demo.sh: "old" (the POP3 source, seeded with sample messages) and
// "new" (the IMAP destination), both with user alice and certificates from
// one CA. It prints shell export lines describing them (and writes them to
// -env-file, atomically, once both are ready), then runs until SIGINT or
// SIGTERM and stops both instances.
//
// Usage:
//
//	mailferry-demo-servers -dir DIR [-messages 50] [-env-file FILE]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const user = "alice"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailferry-demo-servers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for both instances (created; made mode 0755)")
	count := fs.Int("messages", 50, "number of sample messages seeded into the source INBOX")
	envFile := fs.String("env-file", "", "also write the export lines to this file once ready")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mailferry-demo-servers -dir DIR [-messages N] [-env-file FILE]")
		return 2
	}
	if err := serve(ctx, *dir, *count, *envFile, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "mailferry-demo-servers: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, dir string, count int, envFile string, stdout, stderr io.Writer) (err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	// Dovecot's unprivileged processes must traverse dir (mktemp -d makes 0700).
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	ca, err := dovecot.NewCA()
	if err != nil {
		return err
	}
	srcPW, err := password()
	if err != nil {
		return err
	}
	dstPW, err := password()
	if err != nil {
		return err
	}
	src, err := dovecot.StartInstance(ctx, filepath.Join(dir, "old"), dovecot.Options{
		Name: "demo-old", Users: map[string]string{user: srcPW}, CA: ca,
	})
	if err != nil {
		return fmt.Errorf("starting the source server: %w", err)
	}
	defer func() { err = errors.Join(err, src.Stop()) }()
	dst, err := dovecot.StartInstance(ctx, filepath.Join(dir, "new"), dovecot.Options{
		Name: "demo-new", Users: map[string]string{user: dstPW}, CA: ca,
	})
	if err != nil {
		return fmt.Errorf("starting the destination server: %w", err)
	}
	defer func() { err = errors.Join(err, dst.Stop()) }()

	for i, m := range sampleMessages(count) {
		if err := src.SeedMaildir(user, "INBOX", m.data, m.flags, m.date); err != nil {
			return fmt.Errorf("seeding message %d: %w", i+1, err)
		}
	}
	n, err := src.MailboxCount(user, "INBOX")
	if err != nil {
		return err
	}
	if n != count {
		return fmt.Errorf("source INBOX holds %d messages after seeding %d", n, count)
	}

	env := map[string]string{
		"DEMO_DIR":                  dir,
		"DEMO_USER":                 user,
		"DEMO_MESSAGES":             fmt.Sprint(count),
		"DEMO_CA_FILE":              src.CAFile(),
		"SOURCE_POP3S_PORT":         port(src.POP3SAddr()),
		"SOURCE_POP3_PORT":          port(src.POP3Addr()),
		"SOURCE_IMAPS_PORT":         port(src.IMAPSAddr()),
		"SOURCE_DOVECOT_CONFIG":     src.ConfigPath(),
		"DEST_IMAPS_PORT":           port(dst.IMAPSAddr()),
		"DEST_IMAP_PORT":            port(dst.IMAPAddr()),
		"DEST_DOVECOT_CONFIG":       dst.ConfigPath(),
		"MAILFERRY_SOURCE_PASSWORD": srcPW,
		"MAILFERRY_DEST_PASSWORD":   dstPW,
	}
	text := exports(env)
	if envFile != "" {
		tmp := envFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, envFile); err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, text)
	fmt.Fprintf(stderr, "mailferry-demo-servers: source %s (POP3S %s), destination %s (IMAPS %s), %d messages for %s; stop with SIGTERM or Ctrl-C\n",
		src.Name(), src.POP3SAddr(), dst.Name(), dst.IMAPSAddr(), count, user)
	<-ctx.Done()
	fmt.Fprintln(stderr, "mailferry-demo-servers: stopping both servers")
	return nil
}

func password() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// exports renders sorted `export NAME='value'` lines.
func exports(env map[string]string) string {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return b.String()
}
