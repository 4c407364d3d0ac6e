package pipeline

import (
	"fmt"
	"sync"
	"time"
)

// Once an account has uploaded its day's allowance, Gmail may not refuse
// the next APPEND (the daily limit's NO or BYE) but take it ever more
// slowly: the copy crawls on, or ends at the idle timeout as a failed
// attempt. On a destination that does so (Capabilities.CrawlsAtLimit)
// the engine measures how fast each batch is taken, from the moment it
// is sent to its outcome, and a crawl — every batch slower than the
// rule's floor, or than the account's normal rate divided by its factor,
// for the rule's window — pauses the account as the daily limit does
// (a *DailyLimitError: until the next quota day, which is no failure).
// What the destination confirmed is committed first; nothing else is
// recorded.

// CrawlRule says when a destination that slows to a crawl at its daily
// limit (Capabilities.CrawlsAtLimit) crawls.
type CrawlRule struct {
	// Window is how long every batch must be slow: a crawl, not a slow
	// minute. Default 10 minutes.
	Window time.Duration
	// Factor: a batch taken at less than the account's normal rate (the
	// average of the batches that were not slow) divided by Factor is
	// slow. Default 20.
	Factor float64
	// Floor, in bytes a second: a batch taken slower is slow whatever the
	// normal rate (a crawl from the first batch on). Default 2048.
	Floor float64
}

func (r CrawlRule) withDefaults() CrawlRule {
	if r.Window <= 0 {
		r.Window = 10 * time.Minute
	}
	if r.Factor <= 0 {
		r.Factor = 20
	}
	if r.Floor <= 0 {
		r.Floor = 2048
	}
	return r
}

// crawlWatch applies a CrawlRule to an attempt's batches, from every
// destination session.
type crawlWatch struct {
	rule      CrawlRule
	mu        sync.Mutex
	normal    float64   // bytes a second; 0 until a batch that was not slow
	slowSince time.Time // when the run of slow batches began; zero: none
	slowBytes int64     // taken since then
}

// observe is told that a batch of n bytes, sent at sent, was taken by
// done. It returns a *DailyLimitError when the destination crawls.
func (c *crawlWatch) observe(n int64, sent, done time.Time) error {
	took := done.Sub(sent)
	if n <= 0 || took <= 0 {
		return nil
	}
	rate := float64(n) / took.Seconds()
	c.mu.Lock()
	defer c.mu.Unlock()
	slow := rate < c.rule.Floor || c.normal > 0 && rate < c.normal/c.rule.Factor
	if !slow {
		if c.normal == 0 {
			c.normal = rate
		} else {
			c.normal = 0.8*c.normal + 0.2*rate
		}
		c.slowSince, c.slowBytes = time.Time{}, 0
		return nil
	}
	if c.slowSince.IsZero() {
		c.slowSince = sent
	}
	c.slowBytes += n
	if d := done.Sub(c.slowSince); d >= c.rule.Window {
		return &DailyLimitError{Err: fmt.Errorf("the destination slowed to a crawl: %d bytes taken in %s (%.0f bytes/s; normal %.0f bytes/s), as Gmail does once the day's upload is spent",
			c.slowBytes, d.Round(time.Second), float64(c.slowBytes)/d.Seconds(), c.normal)}
	}
	return nil
}
