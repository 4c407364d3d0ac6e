package imapdst

import "testing"

// TestHeaderMessageIDAsTheSourceReadsIt: the Message-ID the destination's
// listing gives for matching is the one the source side computes from the
// same header (mapping.MessageID, whose own tests hold it), whatever the field's spelling: a raw
// field value with a comment, white space inside the brackets or a fold
// made matching miss the copy, and the message was copied twice.
func TestHeaderMessageIDAsTheSourceReadsIt(t *testing.T) {
	for _, c := range []struct {
		name, hdr, want string
	}{
		{"plain", "Message-ID: <a@example.test>\r\n\r\n", "<a@example.test>"},
		{"no blank line", "Message-ID: <a@example.test>\r\n", "<a@example.test>"},
		{"a comment", "Message-ID: <a@example.test> (via the old server)\r\n\r\n", "<a@example.test>"},
		{"space inside", "Message-ID: <shared 1@example.test>\r\n\r\n", "<shared1@example.test>"},
		{"folded", "Message-ID:\r\n <a@example.test>\r\n\r\n", "<a@example.test>"},
		{"lower case name, LF", "message-id: <a@example.test>\n\n", "<a@example.test>"},
		{"none", "Subject: x\r\n\r\n", ""},
	} {
		if got := headerMessageID([]byte(c.hdr)); got != c.want {
			t.Errorf("%s: headerMessageID = %q, want %q", c.name, got, c.want)
		}
	}
}
