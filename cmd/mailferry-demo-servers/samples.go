package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
	"time"
)

// sample is one seeded message: its bytes, Maildir flags and INTERNALDATE.
type sample struct {
	data  []byte
	flags string
	date  time.Time
}

// sampleMessages returns n deterministic messages covering what a migration
// must carry unchanged: lines starting with dots (POP3 dot-stuffing), a line
// that is only ".", RFC 2047 and raw UTF-8 subjects, a base64 attachment, no
// Message-ID, CRLF and LF line endings, folded headers, an empty body.
func sampleMessages(n int) []sample {
	base := time.Date(2021, 6, 1, 9, 30, 0, 0, time.UTC)
	out := make([]sample, 0, n)
	for i := range n {
		date := base.Add(time.Duration(i) * 7 * time.Hour)
		var b bytes.Buffer
		fmt.Fprintf(&b, "Received: from mx.old.example (mx.old.example [192.0.2.25])\n\tby pop.old.example with ESMTP id %06d\n\tfor <alice@old.example>; %s\n",
			i+1, date.Format(time.RFC1123Z))
		fmt.Fprintf(&b, "Date: %s\nFrom: Bob Sender <bob@example.org>\nTo: Alice <alice@old.example>\n",
			date.Add(-3*time.Minute).Format(time.RFC1123Z))
		kind := i % 10
		if kind != 3 {
			fmt.Fprintf(&b, "Message-ID: <demo-%03d@example.org>\n", i+1)
		}
		switch kind {
		case 0:
			fmt.Fprintf(&b, "Subject: Leading dots %d\n\n.this line starts with a dot\n..and this with two\n.\nthe line above is a single dot\n", i+1)
		case 1:
			fmt.Fprintf(&b, "Subject: %s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus Zürich, 東京 und Αθήνα.\n",
				mime.QEncoding.Encode("utf-8", fmt.Sprintf("Grüße %d — ☃", i+1)))
		case 2:
			attachment := bytes.Repeat([]byte{0, 1, 2, 0xfe, 0xff, byte(i)}, 4000)
			enc := base64.StdEncoding.EncodeToString(attachment)
			fmt.Fprintf(&b, "Subject: Report %d (with attachment)\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_b%d\"\n\n", i+1, i)
			fmt.Fprintf(&b, "--=_b%d\nContent-Type: text/plain; charset=us-ascii\n\nThe report is attached.\n\n", i)
			fmt.Fprintf(&b, "--=_b%d\nContent-Type: application/octet-stream; name=\"report-%d.bin\"\nContent-Disposition: attachment; filename=\"report-%d.bin\"\nContent-Transfer-Encoding: base64\n\n", i, i+1, i+1)
			for len(enc) > 76 {
				b.WriteString(enc[:76] + "\n")
				enc = enc[76:]
			}
			fmt.Fprintf(&b, "%s\n--=_b%d--\n", enc, i)
		case 3:
			fmt.Fprintf(&b, "Subject: No Message-ID %d\n\nThis message has no Message-ID header.\n", i+1)
		case 4:
			s := fmt.Sprintf("Subject: CRLF line endings %d\n\nEvery line of this message ends in CRLF.\n.dot line too\n", i+1)
			b.WriteString(s)
		case 5:
			fmt.Fprintf(&b, "Subject: A long subject that is folded over\n several lines, as mail clients do, number %d\nX-Mailer: demo\n\n%s\n",
				i+1, strings.Repeat("A long body line of plain text that goes on. ", 40))
		case 6:
			fmt.Fprintf(&b, "Subject: Raw UTF-8 in a header: café %d\n\nSome servers store 8-bit headers unencoded.\n", i+1)
		case 7:
			fmt.Fprintf(&b, "Subject: Empty body %d\n\n", i+1)
		default:
			fmt.Fprintf(&b, "Subject: Plain message %d\n\nHello Alice,\n\nthis is message %d of the demo.\n\n-- \nBob\n", i+1, i+1)
		}
		data := b.Bytes()
		if kind == 4 {
			data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
		}
		flags := ""
		if i%3 == 0 {
			flags = "S"
		}
		out = append(out, sample{data: data, flags: flags, date: date})
	}
	return out
}
