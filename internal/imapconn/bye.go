package imapconn

import (
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/pipeline"
)

// ByeError: a command failed on a connection the server had ended with an
// untagged BYE (RFC 3501 §7.1.5). go-imap v2.0.0-beta.8 drops the BYE, so
// the commands pending then fail with only "unexpected EOF" or "use of
// closed network connection"; Explain puts the server's reason in front.
// Transient: a server going down, ending an idle session or refusing more
// connections may take a new one later.
type ByeError struct {
	Code string // response code in upper case ("UNAVAILABLE"), "" when none
	Text string // the server's text after the code
	Err  error  // how the command then failed
}

func (e *ByeError) Error() string {
	return "the server said " + e.Reply() + " (" + e.Err.Error() + ")"
}

func (e *ByeError) Unwrap() error { return e.Err }

// Reply is the BYE as the server sent it: "BYE [CODE] text".
func (e *ByeError) Reply() string {
	s := "BYE"
	if e.Code != "" {
		s += " [" + e.Code + "]"
	}
	if e.Text != "" {
		s += " " + e.Text
	}
	return s
}

// ErrorClass implements pipeline.Classifier: transient.
func (e *ByeError) ErrorClass() pipeline.Class { return pipeline.ClassTransient }

// RetryAfter implements pipeline.RetryAfterer: the wait the server named
// in its text (SuggestedBackoff), 0 when none.
func (e *ByeError) RetryAfter() time.Duration { return SuggestedBackoff(e.Text) }

var (
	_ pipeline.Classifier   = (*ByeError)(nil)
	_ pipeline.RetryAfterer = (*ByeError)(nil)
)

// withBye returns err as a *ByeError when the server said BYE on this
// connection and err is not already the server's own answer (a tagged NO
// or BAD, a refused login or token), which says more than the BYE after it.
func (s *Conn) withBye(err error) error {
	if s.bye == nil {
		return err
	}
	b := s.bye.Bye()
	if b == nil {
		return err
	}
	var (
		ie  *imap.Error
		le  *LoginError
		rej *bearer.RejectedError
		be  *ByeError
	)
	if errors.As(err, &ie) || errors.As(err, &le) || errors.As(err, &rej) || errors.As(err, &be) {
		return err
	}
	return &ByeError{Code: b.Code, Text: b.Text, Err: err}
}
