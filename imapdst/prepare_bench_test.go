package imapdst

import (
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// dovecotCaps is what Dovecot 2.3 advertises after login.
const dovecotCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS " +
	"THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED " +
	"I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE " +
	"SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"

// BenchmarkPrepare is StartAppend's work before sending for a batch of
// 100 small messages with a flag and a date, as on *small*: the APPEND
// arguments of each, the server's APPENDLIMIT looked up once per batch
// (it looks through every capability); one op is one message.
func BenchmarkPrepare(b *testing.B) {
	a := &Appender{caps: parseCaps(dovecotCaps)}
	m := pipeline.OutgoingMessage{Body: strings.NewReader("x"), Size: 10000, Flags: []string{`\Seen`},
		InternalDate: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	b.ReportAllocs()
	var limit int64
	for i := 0; i < b.N; i++ {
		if i%100 == 0 {
			limit = a.caps.appendLimit()
		}
		if _, err := a.prepare(m, limit); err != nil {
			b.Fatal(err)
		}
	}
}
