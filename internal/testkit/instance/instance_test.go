package instance

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// fakeTB records how Require and Start ended a test; Fatalf and Skipf
// stop the calling function, as testing's do.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.fatal = fmt.Sprintf(format, a...)
	panic(f)
}
func (f *fakeTB) Skipf(format string, a ...any) {
	f.skip = fmt.Sprintf(format, a...)
	panic(f)
}

// call runs fn, stopping where a Fatalf or Skipf of f stopped it.
func (f *fakeTB) call(fn func()) {
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
	}()
	fn()
}

// TestRequireFailsUnderCI: a missing server fails a test under CI=true
// and skips it otherwise; an installed one does neither.
func TestRequireFailsUnderCI(t *testing.T) {
	missing := errors.New("dovecot not found")
	for _, c := range []struct {
		ci        string
		err       error
		wantFatal bool
		wantSkip  bool
	}{
		{"true", missing, true, false},
		{"", missing, false, true},
		{"false", missing, false, true},
		{"true", nil, false, false},
	} {
		t.Setenv("CI", c.ci)
		f := &fakeTB{TB: t}
		f.call(func() { Require(f, "Dovecot", c.err) })
		if (f.fatal != "") != c.wantFatal || (f.skip != "") != c.wantSkip {
			t.Errorf("CI=%q, %v: fatal=%q skip=%q, want fatal %v, skip %v", c.ci, c.err, f.fatal, f.skip, c.wantFatal, c.wantSkip)
		}
		if c.err != nil && !strings.Contains(f.fatal+f.skip, "Dovecot is unavailable: dovecot not found") {
			t.Errorf("CI=%q: %q%q does not name the server and the error", c.ci, f.fatal, f.skip)
		}
	}
}

type fakeServer struct {
	dir     string
	stopped bool
}

func (s *fakeServer) Stop() error        { s.stopped = true; return nil }
func (s *fakeServer) LogTail(int) string { return "last lines" }

// TestStart: the server starts in a directory of its own, which cleanup
// removes after stopping it; a server that does not start fails the test
// and leaves no directory.
func TestStart(t *testing.T) {
	var s *fakeServer
	t.Run("started", func(t *testing.T) {
		s = Start(t, "Fake", "mfinst-", func(dir string) (*fakeServer, error) {
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				t.Fatalf("the server's directory %s: %v", dir, err)
			}
			return &fakeServer{dir: dir}, nil
		}, func(*fakeServer) string { return "fake instance" })
	})
	if !s.stopped {
		t.Error("cleanup did not stop the server")
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s: %v", s.dir, err)
	}
	var dir string
	f := &fakeTB{TB: t}
	f.call(func() {
		Start(f, "Fake", "mfinst-", func(d string) (*fakeServer, error) {
			dir = d
			return nil, errors.New("no port")
		}, func(*fakeServer) string { return "" })
	})
	if f.fatal != "starting Fake: no port" {
		t.Errorf("a server that did not start: fatal %q, want \"starting Fake: no port\"", f.fatal)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a server that did not start left %s: %v", dir, err)
	}
}
