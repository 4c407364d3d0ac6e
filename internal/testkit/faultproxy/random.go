package faultproxy

import (
	"math/rand"
	"time"
)

// RandomOptions bound the faults RandomFault draws.
type RandomOptions struct {
	// Kinds to choose from; default Cut, Reset, Stall (and Inject when
	// Lines is not empty).
	Kinds []Kind
	// Conn is the connection the fault applies to (0: every connection).
	Conn int
	// MaxAfter bounds the offset: After is drawn from [0, MaxAfter).
	// Default 64 KiB.
	MaxAfter int64
	// MaxStall bounds a Stall's Duration, drawn from [MaxStall/10,
	// MaxStall]; 0 makes every stall last until the connection ends.
	MaxStall time.Duration
	// Lines are the candidates for Inject (at a line start, towards the
	// client), e.g. "* BYE [UNAVAILABLE] going down\r\n".
	Lines [][]byte
	// MinRate and MaxRate bound a Slow fault's bytes per second. Default
	// 2 KiB/s to 64 KiB/s.
	MinRate, MaxRate int
}

// RandomFault draws one fault from rng: the same rng state and options
// give the same fault. An Inject fault is followed by a Cut at the same
// point in the returned slice, as a server that says goodbye hangs up.
func RandomFault(rng *rand.Rand, o RandomOptions) []Fault {
	kinds := o.Kinds
	if len(kinds) == 0 {
		kinds = []Kind{Cut, Reset, Stall}
		if len(o.Lines) > 0 {
			kinds = append(kinds, Inject)
		}
	}
	maxAfter := o.MaxAfter
	if maxAfter <= 0 {
		maxAfter = 64 << 10
	}
	minRate, maxRate := o.MinRate, o.MaxRate
	if minRate <= 0 {
		minRate = 2 << 10
	}
	if maxRate < minRate {
		maxRate = max(minRate, 64<<10)
	}
	f := Fault{Conn: o.Conn, Kind: kinds[rng.Intn(len(kinds))], After: rng.Int63n(maxAfter)}
	if rng.Intn(2) == 0 {
		f.Dir = ClientToServer
	}
	switch f.Kind {
	case Stall:
		if o.MaxStall > 0 {
			f.Duration = o.MaxStall/10 + time.Duration(rng.Int63n(int64(o.MaxStall-o.MaxStall/10)+1))
		}
	case Slow:
		f.BytesPerSecond = minRate + rng.Intn(maxRate-minRate+1)
	case Inject:
		if len(o.Lines) == 0 {
			f.Kind = Cut
			break
		}
		f.Dir, f.AtLineStart = ServerToClient, true
		f.Line = o.Lines[rng.Intn(len(o.Lines))]
		cut := f
		cut.Kind, cut.Line = Cut, nil
		return []Fault{f, cut}
	}
	return []Fault{f}
}
