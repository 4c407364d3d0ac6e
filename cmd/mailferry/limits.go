package main

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/mailferry/mailferry/pipeline"
)

// hostLimits caps the connections open to each server across all workers:
// servers limit connections per IP and user (Dovecot: 10 by default), and
// a run of many accounts must not trip that limit or look like an attack.
type hostLimits struct {
	mu    sync.Mutex
	slots map[string]*semaphore.Weighted
}

// acquire takes n connection slots for addr at once (taking them one by
// one could deadlock workers that each hold some), waiting while they are
// in use; limit <= 0 means no cap. It returns the function that gives them
// back; calling it more than once is harmless.
func (h *hostLimits) acquire(ctx context.Context, addr string, limit, n int) (func(), error) {
	if limit <= 0 {
		return func() {}, nil
	}
	w := int64(min(n, limit))
	h.mu.Lock()
	if h.slots == nil {
		h.slots = map[string]*semaphore.Weighted{}
	}
	sem, ok := h.slots[addr]
	if !ok {
		sem = semaphore.NewWeighted(int64(limit))
		h.slots[addr] = sem
	}
	h.mu.Unlock()
	if err := sem.Acquire(ctx, w); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { sem.Release(w) }) }, nil
}

// tryAcquire is acquire without waiting: ok is false when the slots are
// in use.
func (h *hostLimits) tryAcquire(addr string, limit, n int) (release func(), ok bool) {
	if limit <= 0 {
		return func() {}, true
	}
	w := int64(min(n, limit))
	h.mu.Lock()
	if h.slots == nil {
		h.slots = map[string]*semaphore.Weighted{}
	}
	sem, found := h.slots[addr]
	if !found {
		sem = semaphore.NewWeighted(int64(limit))
		h.slots[addr] = sem
	}
	h.mu.Unlock()
	if !sem.TryAcquire(w) {
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { sem.Release(w) }) }, true
}

// errNoSlot is returned for an extra session when the server's connection
// cap is reached; the copy goes on with the sessions it has.
var errNoSlot = errors.New("the destination's connection cap (max_connections) is reached")

// limitExtraDestination wraps open for additional sessions: it takes
// slots only if they are free right now, never waiting.
func (h *hostLimits) limitExtraDestination(open func(context.Context) (pipeline.Destination, error), addr string, limit int) func(context.Context) (pipeline.Destination, error) {
	if limit <= 0 {
		return open
	}
	return func(ctx context.Context) (pipeline.Destination, error) {
		release, ok := h.tryAcquire(addr, limit, imapdstConnections)
		if !ok {
			return nil, errNoSlot
		}
		dst, err := open(ctx)
		if err != nil {
			release()
			return nil, err
		}
		return limitedDestination{Destination: dst, release: release}, nil
	}
}

// limitedSource gives its connection slot back when closed.
type limitedSource struct {
	pipeline.Source
	release func()
}

func (s limitedSource) Unwrap() pipeline.Source { return s.Source }

func (s limitedSource) Prefetch(ctx context.Context, msgs []pipeline.SourceMessage) error {
	if p, ok := s.Source.(pipeline.Prefetcher); ok {
		return p.Prefetch(ctx, msgs)
	}
	return nil
}

func (s limitedSource) Close(commit bool) error {
	defer s.release()
	return s.Source.Close(commit)
}

// limitedDestination gives its connection slots back when closed.
type limitedDestination struct {
	pipeline.Destination
	release func()
}

func (d limitedDestination) Unwrap() pipeline.Destination { return d.Destination }

var _ pipeline.AppendStarter = limitedDestination{}

// StartAppend keeps the wrapped destination's pipelined MULTIAPPEND.
func (d limitedDestination) StartAppend(ctx context.Context, mailbox string, msgs []pipeline.OutgoingMessage) func() ([]pipeline.AppendResult, error) {
	if s, ok := d.Destination.(pipeline.AppendStarter); ok {
		return s.StartAppend(ctx, mailbox, msgs)
	}
	res, err := d.Destination.Append(ctx, mailbox, msgs)
	return func() ([]pipeline.AppendResult, error) { return res, err }
}

func (d limitedDestination) Close() error {
	defer d.release()
	return d.Destination.Close()
}

// imapdstConnections is how many connections one destination session
// opens: the appender and the control connection.
const imapdstConnections = 2

// limitSource wraps open so that it waits for a slot of addr first.
func (h *hostLimits) limitSource(open func(context.Context) (pipeline.Source, error), addr string, limit int) func(context.Context) (pipeline.Source, error) {
	if limit <= 0 {
		return open
	}
	return func(ctx context.Context) (pipeline.Source, error) {
		release, err := h.acquire(ctx, addr, limit, 1)
		if err != nil {
			return nil, err
		}
		src, err := open(ctx)
		if err != nil {
			release()
			return nil, err
		}
		return limitedSource{Source: src, release: release}, nil
	}
}

// limitDestination wraps open so that it waits for slots of addr first.
func (h *hostLimits) limitDestination(open func(context.Context) (pipeline.Destination, error), addr string, limit int) func(context.Context) (pipeline.Destination, error) {
	if limit <= 0 {
		return open
	}
	return func(ctx context.Context) (pipeline.Destination, error) {
		release, err := h.acquire(ctx, addr, limit, imapdstConnections)
		if err != nil {
			return nil, err
		}
		dst, err := open(ctx)
		if err != nil {
			release()
			return nil, err
		}
		return limitedDestination{Destination: dst, release: release}, nil
	}
}
