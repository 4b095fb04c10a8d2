// Package fakeclock is a clock that tests move by hand, injected where the
// code under test takes a func() time.Time (Options.Now), so that what
// depends on time (windows, idleness, schedules, lag) is tested without
// sleeping.
//
// It imports nothing of Lambdaflow.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a settable clock. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
