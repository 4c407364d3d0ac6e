package imapdst

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

var _ pipeline.RetryAfterer = (*ReplyError)(nil)

func TestReplyErrorRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		err  *ReplyError
		want time.Duration
	}{
		{name: "Office 365 throttling",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "Request is throttled. Suggested Backoff Time: 1234 milliseconds"},
			want: 1234 * time.Millisecond},
		{name: "case and spacing do not matter",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "request is THROTTLED. suggested   backoff time:42 MILLISECONDS"},
			want: 42 * time.Millisecond},
		{name: "text after the time",
			err:  &ReplyError{Command: "SELECT", Status: "NO", Text: "Suggested Backoff Time: 500 ms. Try again later"},
			want: 500 * time.Millisecond},
		{name: "no unit means milliseconds",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "Request is throttled. Suggested Backoff Time: 250"},
			want: 250 * time.Millisecond},
		{name: "seconds",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "Suggested Backoff Time: 3 seconds"},
			want: 3 * time.Second},
		{name: "absurd value is capped",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "Suggested Backoff Time: 86400000 milliseconds"},
			want: 15 * time.Minute},
		{name: "more digits than an int64 is capped",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "Suggested Backoff Time: 99999999999999999999999 milliseconds"},
			want: 15 * time.Minute},
		{name: "Gmail THROTTLED without a time",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Code: "THROTTLED", Text: "Too many simultaneous connections"},
			want: 0},
		{name: "LIMIT without a time",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Code: "LIMIT", Text: "Too many commands"},
			want: 0},
		{name: "UNAVAILABLE without a time",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Code: "UNAVAILABLE", Text: "try later"},
			want: 0},
		{name: "BYE without a time",
			err:  &ReplyError{Command: "APPEND", Status: "BYE", Code: "UNAVAILABLE", Text: "going down"},
			want: 0},
		{name: "throttled without a number",
			err:  &ReplyError{Command: "APPEND", Status: "NO", Text: "Request is throttled. Suggested Backoff Time: soon"},
			want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.RetryAfter(); got != tc.want {
				t.Errorf("RetryAfter() = %v, want %v", got, tc.want)
			}
			// Found through wrapping, as the pipeline looks for it.
			var ra pipeline.RetryAfterer
			wrapped := fmt.Errorf("appending to %q: %w", "INBOX", tc.err)
			if !errors.As(wrapped, &ra) || ra.RetryAfter() != tc.want {
				t.Errorf("errors.As(wrapped) did not give RetryAfter %v", tc.want)
			}
		})
	}
}
