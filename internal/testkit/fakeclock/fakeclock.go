// Package fakeclock is a virtual clock for tests of waits measured in
// time: a wait does not sleep, it moves the clock to its end. Token
// buckets and timetables then run as they would over hours, in
// milliseconds, and their timing becomes a property a test can assert
// exactly. Several goroutines may wait at once: the clock moves to the
// latest end any of them waited for, as real time would.
package fakeclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a virtual clock. Its zero value is not usable: call New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	waited time.Duration
	hook   func(now time.Time)
}

// New returns a clock that reads start until a wait or Set moves it.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// WaitUntil moves the clock to t, when t is later, and returns at once (or
// with ctx's error when ctx has ended).
func (c *Clock) WaitUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if t.After(c.now) {
		c.waited += t.Sub(c.now)
		c.now = t
	}
	now, hook := c.now, c.hook
	c.mu.Unlock()
	if hook != nil {
		hook(now)
	}
	return nil
}

// Set moves the clock to t (also backwards).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Waited is how far waits have moved the clock in all (Set and Advance
// not counted).
func (c *Clock) Waited() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waited
}

// OnWait sets a function called after each wait with the clock's time
// (nil: none); it must not call WaitUntil.
func (c *Clock) OnWait(f func(now time.Time)) {
	c.mu.Lock()
	c.hook = f
	c.mu.Unlock()
}
