package pop3src

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// retrRetries are the waits before each RETR sent again after the server
// refused one with a bare -ERR.
var retrRetries = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond}

// refusedRetr deals with a Fetch that failed with err after writing
// written bytes: a -ERR to RETR without a response code (a server without
// RESP-CODES, RFC 2449 §8, says nothing more) refuses that message, and
// the session is still usable. The RETR is sent again after each wait of
// retrRetries; a message refused every time is failed on its own
// (pipeline.PerMessage, with the server's reply): it must not stop the
// messages after it, and the next run tries it again. Coded refusals keep
// their class ([SYS/TEMP], [IN-USE]: the session or the server is busy),
// and so does anything else.
func (s *Source) refusedRetr(ctx context.Context, msg pipeline.SourceMessage, w io.Writer, written int64, err error) (int64, error) {
	var re *ResponseError
	if written != 0 || !errors.As(err, &re) || re.Code != "" || commandName(re.Command) != "RETR" {
		return written, err
	}
	n, sure, nerr := s.number("fetching", msg)
	if nerr != nil {
		return written, err
	}
	for _, wait := range retrRetries {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, err
		case <-t.C:
		}
		s.sent = s.pos // Retr discards the prefetched replies in flight
		if !sure && s.pipelining {
			written, err = s.c.RetrIfUID(ctx, n, msg.Key, w)
		} else {
			written, err = s.c.Retr(ctx, n, w)
		}
		if err == nil || written != 0 || !errors.As(err, &re) || re.Code != "" {
			return written, err
		}
	}
	s.log.Warn("the server refused the message every time; it fails, the others go on",
		"key", msg.Key, "tries", len(retrRetries)+1, "reply", re.reply())
	return 0, pipeline.PerMessage(fmt.Errorf("the server refused it %d times: %w", len(retrRetries)+1, err))
}

// isRefusal reports whether err is a -ERR to RETR without a response code
// (see refusedRetr).
func isRefusal(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.Code == "" && commandName(re.Command) == "RETR"
}

// sizeIn looks a message's size up in a LIST reply.
func sizeIn(list []MessageInfo) func(int) (int64, error) {
	return func(n int) (int64, error) {
		for _, m := range list {
			if m.Number == n {
				return m.Size, nil
			}
		}
		return 0, nil
	}
}

// sizeAsked asks the server for a message's size (LIST n): for a message
// keyed before the whole LIST was read.
func (s *Source) sizeAsked(ctx context.Context) func(int) (int64, error) {
	return func(n int) (int64, error) {
		infos, err := s.c.Infos(ctx, []int{n}, true, false)
		if err != nil || len(infos) == 0 {
			return 0, err
		}
		return infos[0].Size, nil
	}
}
