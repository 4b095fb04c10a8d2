// Package retry runs an operation again after it failed, waiting between
// attempts for an exponentially growing, capped and optionally jittered
// time. It is the one retry loop of Lambdaflow: the log's appends, ingest's
// dedup rebuild, the speed layer's view restarts, the lake writer's
// partition restarts and the sinks' writes all use it, each with its own
// Backoff.
//
// What to retry is the caller's decision: the operation returns nil (done),
// an error (retry it) or Permanent(err) (give up). Waiting is done on an
// injected clock (Backoff.After) with injected randomness (Backoff.Rand), so
// tests run without sleeping.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Jitter says how a delay is randomised. The names are those of the AWS
// Architecture Blog's "Exponential Backoff and Jitter" (2015), where d is
// the capped exponential delay min(Cap, Base·2^(attempt−1)).
type Jitter uint8

const (
	// NoJitter waits exactly d. For a single waiter (one process retrying
	// its own work), where nothing retries in step with it.
	NoJitter Jitter = iota
	// Full waits a uniformly random time in [0, d]: the least total load
	// when many clients fail together, at the price of sometimes retrying
	// almost at once.
	Full
	// Equal waits d/2 plus a uniformly random time in [0, d/2]: spread out
	// like Full, but never less than half of d, for a server that refused
	// work because it is overloaded and needs the time.
	Equal
)

// Backoff is a retry policy. The zero value retries at once, forever; set
// at least Base and Cap. A Backoff is a value: copy it freely.
type Backoff struct {
	// Base is the delay before the first retry; it doubles with every
	// further attempt up to Cap.
	Base time.Duration
	// Cap bounds the delay before jitter.
	Cap time.Duration
	// Jitter randomises each delay; see the constants.
	Jitter Jitter
	// Attempts bounds the calls Do makes (0: no bound).
	Attempts int
	// Rand returns a uniformly random duration in [0, d]; nil uses
	// math/rand/v2.
	Rand func(d time.Duration) time.Duration
	// After is the clock Wait sleeps on; nil is time.After.
	After func(d time.Duration) <-chan time.Time
}

// Delay returns the wait after failed attempt number attempt (1 is the
// first call): min(Cap, Base·2^(attempt−1)), jittered. Attempts below 1
// count as 1.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Cap
	if shift := max(attempt, 1) - 1; shift < 62 && b.Base <= b.Cap>>shift {
		d = b.Base << shift
	}
	if d <= 0 {
		return 0
	}
	rnd := b.Rand
	if rnd == nil {
		rnd = Uniform
	}
	switch b.Jitter {
	case Full:
		return rnd(d)
	case Equal:
		return d/2 + rnd(d-d/2)
	}
	return d
}

// Wait sleeps the delay of attempt on b's clock. It returns ctx.Err() if ctx
// ends first.
func (b Backoff) Wait(ctx context.Context, attempt int) error {
	return b.sleep(ctx, b.Delay(attempt))
}

func (b Backoff) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	after := b.After
	if after == nil {
		after = time.After
	}
	select {
	case <-after(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Do calls op with attempt = 1, 2, … until it returns nil, returns an error
// made by Permanent, has been called Attempts times, or ctx ends. Between
// calls it waits Delay(attempt), first calling notify (if not nil) with the
// attempt that failed, its error and the wait, which is where callers log
// and count retries.
//
// Do returns nil on success and otherwise the last error of op (unwrapped
// from Permanent). When ctx ends, op's last error is returned as it is: the
// caller tells a stop from a failure by ctx.Err(). ctx is not passed to op;
// an op that blocks should take the same ctx.
func (b Backoff) Do(ctx context.Context, op func(attempt int) error, notify func(attempt int, err error, wait time.Duration)) error {
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		var p *permanent
		if errors.As(err, &p) {
			return p.err
		}
		if ctx.Err() != nil || (b.Attempts > 0 && attempt >= b.Attempts) {
			return err
		}
		wait := b.Delay(attempt)
		if notify != nil {
			notify(attempt, err, wait)
		}
		if b.sleep(ctx, wait) != nil {
			return err
		}
	}
}

// Permanent marks err as not worth retrying: Do returns it at once. A nil
// err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Uniform returns a uniformly random duration in [0, d] (0 for d ≤ 0), from
// math/rand/v2. It is the default Backoff.Rand.
func Uniform(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
