//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols columns: the program writes to
// the returned terminal side, the test reads what it shows from the other.
func openPTY(t *testing.T, cols int) (screen, term *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pty: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// terminal is what a VT100-like terminal shows after the bytes a program
// wrote: enough of the escape sequences for progress bars (carriage
// return, line feed, erase in line and display, cursor up/down/column).
type terminal struct {
	lines    [][]rune
	row, col int
}

func (tm *terminal) line() []rune {
	for len(tm.lines) <= tm.row {
		tm.lines = append(tm.lines, nil)
	}
	return tm.lines[tm.row]
}

func (tm *terminal) write(b []byte) {
	for len(b) > 0 {
		switch c := b[0]; {
		case c == '\r':
			tm.col = 0
			b = b[1:]
		case c == '\n':
			tm.row++
			tm.line()
			b = b[1:]
		case c == 0x1b && len(b) > 1 && b[1] == '[':
			i := 2
			for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == ';' || b[i] == '?') {
				i++
			}
			if i == len(b) {
				return
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(string(b[2:i]), "?"))
			tm.escape(b[i], string(b[2:i]), n)
			b = b[i+1:]
		case c < 0x20:
			b = b[1:]
		default:
			r, size := utf8.DecodeRune(b)
			l := tm.line()
			for len(l) <= tm.col {
				l = append(l, ' ')
			}
			l[tm.col] = r
			tm.lines[tm.row] = l
			tm.col++
			b = b[size:]
		}
	}
}

func (tm *terminal) escape(final byte, arg string, n int) {
	l := tm.line()
	switch final {
	case 'K':
		switch arg {
		case "", "0":
			if tm.col < len(l) {
				tm.lines[tm.row] = l[:tm.col]
			}
		case "2":
			tm.lines[tm.row] = nil
		}
	case 'J':
		if tm.col < len(l) {
			tm.lines[tm.row] = l[:tm.col]
		}
		tm.lines = tm.lines[:tm.row+1]
	case 'A':
		tm.row = max(tm.row-max(n, 1), 0)
	case 'B':
		tm.row += max(n, 1)
		tm.line()
	case 'C':
		tm.col += max(n, 1)
	case 'G':
		tm.col = max(n-1, 0)
	}
}

// screen returns the lines the terminal shows, trailing blanks removed.
func (tm *terminal) screen() []string {
	var out []string
	for _, l := range tm.lines {
		out = append(out, strings.TrimRight(string(l), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// TestTerminalEmulator checks the emulator the bar tests rely on.
func TestTerminalEmulator(t *testing.T) {
	var tm terminal
	tm.write([]byte("messages 10% |##   |\r\x1b[2K\rlog line\nmessages 50%\x1b[0K\r   \r\x1b[Kdone\n"))
	if got := strings.Join(tm.screen(), "|"); got != "log line|done" {
		t.Errorf("screen = %q, want %q", got, "log line|done")
	}
}

// TestE2EInterruptLeavesNoBar: a copy on a terminal draws a progress bar;
// after the first SIGINT the terminal shows the log lines and the notice
// of the interrupt, and no bar, nor a piece of one.
func TestE2EInterruptLeavesNoBar(t *testing.T) {
	x := startInterruptible(t, "--progress", "auto")
	screenSide, term := openPTY(t, 100)
	cmd := exec.Command(os.Args[0], x.args...)
	cmd.Env = append(os.Environ(), "MAILFERRY_E2E_AS_MAIN=1", "TERM=xterm",
		"MAILFERRY_SOURCE_PASSWORD="+srcPassword, "MAILFERRY_DEST_PASSWORD="+dstPassword)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, term
	var mu sync.Mutex
	var shown bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := screenSide.Read(buf)
			mu.Lock()
			shown.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if n, _ := x.p.dst.MailboxCount("alice", "INBOX"); n >= 20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("after 90 s fewer than 20 messages are on the destination")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the bar is drawn every 100 ms
	cmd.Process.Signal(os.Interrupt)
	code, _ := waitExit(t, cmd, time.Now(), 60*time.Second)
	time.Sleep(200 * time.Millisecond) // the last bytes through the pty
	mu.Lock()
	raw := shown.Bytes()
	mu.Unlock()
	var tm terminal
	tm.write(raw)
	screen := tm.screen()
	t.Logf("exit %d; the terminal shows:\n%s", code, strings.Join(screen, "\n"))
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d", code, exitInterrupted)
	}
	if !bytes.Contains(raw, []byte("msg/s")) {
		t.Fatalf("no progress bar was drawn on the terminal:\n%q", raw)
	}
	for _, l := range screen {
		if strings.Contains(l, "msg/s") || strings.Contains(l, "%|") || strings.HasPrefix(l, "messages") {
			t.Errorf("a piece of the progress bar is left on the terminal: %q", l)
		}
	}
	if !strings.Contains(strings.Join(screen, "\n"), "the batches in flight finish and are committed") {
		t.Error("the terminal does not show the notice of the interrupt")
	}
	if !strings.Contains(stdout.String(), "interrupted: run the same command again to resume") {
		t.Errorf("the summary does not say how to resume:\n%s", stdout.String())
	}
}
