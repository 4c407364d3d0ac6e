package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestDemoKeep runs scripts/demo.sh --keep: after the demo the servers
// stay up, and the script prints their ports, the user, where the
// passwords are, commands to try and how to stop them. The printed
// commands work as printed (after sourcing env.sh), and the printed stop
// command stops the servers and removes the demo's directory.
func TestDemoKeep(t *testing.T) {
	dovecot.Require(t)
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "demo.sh"), "--keep").CombinedOutput()
	text := string(out)
	stop := regexp.MustCompile(`(?m)^  (\S+/stop\.sh)$`).FindStringSubmatch(text)
	if stop != nil {
		// Whatever happens below, the servers must not outlive the test.
		defer exec.Command(stop[1]).Run()
	}
	if err != nil || stop == nil {
		t.Fatalf("demo.sh --keep: %v\n%s", err, text)
	}
	for _, want := range []string{"keep running", "user:              alice", "MAILFERRY_SOURCE_PASSWORD", "CA certificate:",
		"mailferry verify ", "mailferry copy imaps://", "--create-folders"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo.sh --keep does not say %q:\n%s", want, text)
		}
	}
	port := regexp.MustCompile(`new \(destination\): IMAPS 127\.0\.0\.1:(\d+)`).FindStringSubmatch(text)
	if port == nil {
		t.Fatalf("no destination port printed:\n%s", text)
	}
	addr := "127.0.0.1:" + port[1]
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		t.Fatalf("the destination server is not running after the script ended: %v", err)
	} else {
		c.Close()
	}

	// The printed commands, in a shell, as a user would paste them.
	dir := filepath.Dir(stop[1])
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "source /") || strings.HasPrefix(l, "export PATH=") || strings.HasPrefix(l, "mailferry verify ") ||
			strings.HasPrefix(l, "mailferry copy imaps://") || strings.HasPrefix(l, "mailferry status ") {
			lines = append(lines, l)
		}
	}
	script := strings.Join(lines, " &&\n") + "\n"
	sh := exec.CommandContext(ctx, "bash", "-c", script)
	sh.Env = append(os.Environ(), "MAILFERRY_PROGRESS=none")
	got, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "OK: every source message is on the destination, once") ||
		!strings.Contains(string(got), "created a folder on the destination: Old/INBOX") {
		t.Errorf("the printed commands (%v):\n%s\n%s", err, script, got)
	}

	if out, err := exec.Command(stop[1]).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", stop[1], err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after the stop command", dir)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the destination server still runs after the stop command")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
