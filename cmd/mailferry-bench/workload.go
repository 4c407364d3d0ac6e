package main

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// message is one generated message: its exact bytes (CRLF line ends, as a
// server serves them) and the internal date it is seeded with.
type message struct {
	data []byte
	date time.Time
}

// workload is a seeded set of messages, kept in memory so that the write
// ceiling can append them without reading anything.
type workload struct {
	name  string
	msgs  []message
	bytes int64
}

// smallSpec and mixedSpec describe the two workloads of issue 6.
type smallSpec struct {
	Count              int // messages
	MinBytes, MaxBytes int
}

type mixedSpec struct {
	Count      int   // messages, large ones included
	TotalBytes int64 // about this many bytes in all
	// LargeBytes are the sizes of the few large messages (10–30 MB at full
	// scale); the rest share what is left of TotalBytes.
	LargeBytes []int
}

// words is the vocabulary of generated text; lines starting with "." appear
// now and then so that dot-stuffing is exercised.
var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all we their has would when if so no
will can more out up about into them than its some could what time only other new these two may
first then do any like my now over such our man me even most made after also did many before
migration mailbox server message archive quarterly report invoice meeting agenda minutes budget
.hidden .dotted`)

// generator makes deterministic messages from a seed.
type generator struct {
	rng  *rand.Rand
	base time.Time
}

func newGenerator(seed uint64, stream uint64) *generator {
	return &generator{
		rng:  rand.New(rand.NewPCG(seed, stream)),
		base: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// header writes the message header; the date is also the internal date.
func (g *generator) header(b *strings.Builder, kind string, i int, date time.Time, extra string) {
	d := date.Format(time.RFC1123Z)
	fmt.Fprintf(b, "Return-Path: <sender%d@example.org>\r\n", g.rng.IntN(500))
	fmt.Fprintf(b, "Received: from mx%d.example.org (mx.example.org [192.0.2.%d])\r\n\tby mail.example.net with ESMTPS id bench%d; %s\r\n",
		g.rng.IntN(9), 1+g.rng.IntN(250), i, d)
	fmt.Fprintf(b, "Date: %s\r\n", d)
	fmt.Fprintf(b, "From: Sender %d <sender%d@example.org>\r\n", i%97, i%97)
	b.WriteString("To: bench@example.net\r\n")
	fmt.Fprintf(b, "Subject: %s message %d about %s\r\n", kind, i, words[g.rng.IntN(len(words))])
	fmt.Fprintf(b, "Message-ID: <bench-%s-%d.%d@example.org>\r\n", kind, i, g.rng.Uint32())
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString(extra)
	b.WriteString("\r\n")
}

// text appends lines of words until b holds about limit bytes.
func (g *generator) text(b *strings.Builder, limit int) {
	for b.Len() < limit {
		n := 0
		for n < 60 {
			w := words[g.rng.IntN(len(words))]
			if n > 0 {
				b.WriteByte(' ')
				n++
				w = strings.TrimPrefix(w, ".")
			}
			b.WriteString(w)
			n += len(w)
		}
		b.WriteString("\r\n")
	}
}

// base64Lines appends a base64 body of random bytes, in 76-character lines,
// until b holds about limit bytes.
func (g *generator) base64Lines(b *strings.Builder, limit int) {
	raw := make([]byte, 57) // 57 bytes encode to one 76-character line
	line := make([]byte, 76)
	for b.Len() < limit {
		for i := range raw {
			raw[i] = byte(g.rng.Uint32())
		}
		base64.StdEncoding.Encode(line, raw)
		b.Write(line)
		b.WriteString("\r\n")
	}
}

func (g *generator) date(i int) time.Time {
	// Spread over about five years, a few minutes apart, in order.
	return g.base.Add(time.Duration(i)*37*time.Minute + time.Duration(g.rng.IntN(600))*time.Second)
}

// plainMessage is a text/plain message of about size bytes.
func (g *generator) plainMessage(kind string, i, size int) message {
	date := g.date(i)
	var b strings.Builder
	b.Grow(size + 512)
	g.header(&b, kind, i, date, "Content-Type: text/plain; charset=us-ascii\r\n")
	g.text(&b, size)
	return message{data: []byte(b.String()), date: date}
}

// attachmentMessage is a multipart message with a short text part and a
// base64 attachment, about size bytes in all.
func (g *generator) attachmentMessage(kind string, i, size int) message {
	date := g.date(i)
	boundary := fmt.Sprintf("=_bench_%d_%x", i, g.rng.Uint64())
	var b strings.Builder
	b.Grow(size + 1024)
	g.header(&b, kind, i, date, fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"%s\"\r\n", boundary))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary)
	g.text(&b, b.Len()+800)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"+
		"Content-Disposition: attachment; filename=\"file%d.bin\"\r\n\r\n", boundary, i)
	g.base64Lines(&b, size-len(boundary)-8)
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return message{data: []byte(b.String()), date: date}
}

// smallWorkload is spec.Count text messages of uniformly drawn sizes.
func smallWorkload(name string, seed uint64, spec smallSpec) *workload {
	g := newGenerator(seed, 1)
	w := &workload{name: name}
	for i := range spec.Count {
		size := spec.MinBytes + g.rng.IntN(spec.MaxBytes-spec.MinBytes+1)
		w.add(g.plainMessage("small", i, size))
	}
	return w
}

// mixedWorkload is spec.Count messages of about spec.TotalBytes: the large
// ones at random positions, the rest with sizes from a heavy-tailed
// distribution (most a few KB, some hundreds of KB) scaled to fill the total.
// Messages above 64 KB carry a base64 attachment, like real mail.
func mixedWorkload(name string, seed uint64, spec mixedSpec) *workload {
	g := newGenerator(seed, 2)
	rest := spec.Count - len(spec.LargeBytes)
	budget := spec.TotalBytes
	for _, l := range spec.LargeBytes {
		budget -= int64(l)
	}
	const minSize, maxSize = 2 << 10, 4 << 20
	weights := make([]float64, rest)
	var sum float64
	for i := range weights {
		// Log-normal-ish: exp of a normal draw, most small, a long tail.
		weights[i] = g.rng.ExpFloat64() * g.rng.ExpFloat64() * g.rng.ExpFloat64()
		sum += weights[i]
	}
	sizes := make([]int, 0, spec.Count)
	for _, wt := range weights {
		s := minSize
		if budget > 0 && sum > 0 {
			s = int(float64(budget) * wt / sum)
		}
		sizes = append(sizes, min(max(s, minSize), maxSize))
	}
	// Large messages go at seeded positions among the others.
	for _, l := range spec.LargeBytes {
		pos := g.rng.IntN(len(sizes) + 1)
		sizes = append(sizes[:pos], append([]int{l}, sizes[pos:]...)...)
	}
	w := &workload{name: name}
	for i, s := range sizes {
		if s > 64<<10 {
			w.add(g.attachmentMessage("mixed", i, s))
		} else {
			w.add(g.plainMessage("mixed", i, s))
		}
	}
	return w
}

func (w *workload) add(m message) {
	w.msgs = append(w.msgs, m)
	w.bytes += int64(len(m.data))
}

// prefix is the workload's first n messages, under another name.
func (w *workload) prefix(name string, n int) *workload {
	p := &workload{name: name}
	for _, m := range w.msgs[:min(n, len(w.msgs))] {
		p.add(m)
	}
	return p
}

// largest is the size of the workload's largest message.
func (w *workload) largest() int {
	l := 0
	for _, m := range w.msgs {
		l = max(l, len(m.data))
	}
	return l
}

// hugeWorkload is one multipart message of about size bytes with a base64
// attachment: the message that must move without memory growing with it.
func hugeWorkload(name string, seed uint64, size int) *workload {
	g := newGenerator(seed, 3)
	w := &workload{name: name}
	w.add(g.attachmentMessage("huge", 0, size))
	return w
}
