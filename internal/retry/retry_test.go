package retry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// whole is a Rand that always draws the top of its range.
func whole(d time.Duration) time.Duration { return d }

func TestDelayCeiling(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Cap: 30 * time.Second, Jitter: Full, Rand: whole}
	f := func(attempt int, want time.Duration) {
		t.Helper()
		if got := b.Delay(attempt); got != want {
			t.Errorf("Delay(%d) ceiling = %v, want %v", attempt, got, want)
		}
	}
	f(0, 100*time.Millisecond)
	f(1, 100*time.Millisecond)
	f(2, 200*time.Millisecond)
	f(3, 400*time.Millisecond)
	f(9, 25600*time.Millisecond)
	f(10, 30*time.Second)
	f(64, 30*time.Second)
	f(1000, 30*time.Second)

	// A base above the cap waits the cap.
	if got := (Backoff{Base: time.Minute, Cap: time.Second}).Delay(1); got != time.Second {
		t.Errorf("base above cap: Delay(1) = %v, want the cap", got)
	}
	if got := (Backoff{}).Delay(5); got != 0 {
		t.Errorf("zero Backoff: Delay(5) = %v, want 0", got)
	}
}

// TestJitterKinds draws many delays of attempt 3 (d = 400ms) with the real
// randomness and checks each kind's range and spread.
func TestJitterKinds(t *testing.T) {
	const d, n = 400 * time.Millisecond, 2000
	for _, c := range []struct {
		jitter   Jitter
		lo, hi   time.Duration
		belowMid float64 // expected share below the middle of [lo, hi]
	}{
		{NoJitter, d, d, 0},
		{Full, 0, d, 0.5},
		{Equal, d / 2, d, 0.5},
	} {
		b := Backoff{Base: 100 * time.Millisecond, Cap: 30 * time.Second, Jitter: c.jitter}
		below := 0
		for range n {
			got := b.Delay(3)
			if got < c.lo || got > c.hi {
				t.Fatalf("jitter %d: Delay(3) = %v, outside [%v, %v]", c.jitter, got, c.lo, c.hi)
			}
			if got < (c.lo+c.hi)/2 {
				below++
			}
		}
		// Uniform over the range, not clustered at either end.
		if share := float64(below) / n; share < c.belowMid-0.17 || share > c.belowMid+0.17 {
			t.Errorf("jitter %d: %.2f of delays below the middle, want about %.2f", c.jitter, share, c.belowMid)
		}
	}
}

// fakeClock records the waits asked of it and lets them pass at once.
type fakeClock struct{ waits []time.Duration }

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

func TestDoRetriesUntilSuccess(t *testing.T) {
	clock := &fakeClock{}
	b := Backoff{Base: 25 * time.Millisecond, Cap: time.Second, After: clock.after}
	var notified []string
	calls := 0
	err := b.Do(context.Background(), func(attempt int) error {
		calls++
		if attempt != calls {
			t.Fatalf("attempt %d on call %d", attempt, calls)
		}
		if attempt < 8 {
			return fmt.Errorf("failure %d", attempt)
		}
		return nil
	}, func(attempt int, err error, wait time.Duration) {
		notified = append(notified, fmt.Sprintf("%d %v %v", attempt, err, wait))
	})
	if err != nil || calls != 8 {
		t.Fatalf("err %v after %d calls, want nil after 8", err, calls)
	}
	want := []time.Duration{25, 50, 100, 200, 400, 800, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(clock.waits, want[:7]) {
		t.Errorf("waits %v, want %v", clock.waits, want[:7])
	}
	if len(notified) != 7 || notified[0] != "1 failure 1 25ms" || notified[6] != "7 failure 7 1s" {
		t.Errorf("notified %q", notified)
	}
}

func TestDoPermanent(t *testing.T) {
	clock := &fakeClock{}
	cause := errors.New("no such table")
	calls := 0
	err := Backoff{Base: time.Millisecond, Cap: time.Second, After: clock.after}.Do(context.Background(), func(int) error {
		calls++
		if calls == 3 {
			return Permanent(fmt.Errorf("giving up: %w", cause))
		}
		return errors.New("transient")
	}, nil)
	if !errors.Is(err, cause) || err.Error() != "giving up: no such table" || calls != 3 || len(clock.waits) != 2 {
		t.Fatalf("err %v after %d calls and %d waits, want the permanent error after 3 and 2", err, calls, len(clock.waits))
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}

func TestDoAttempts(t *testing.T) {
	clock := &fakeClock{}
	calls := 0
	err := Backoff{Base: time.Millisecond, Cap: time.Second, Attempts: 4, After: clock.after}.Do(context.Background(), func(attempt int) error {
		calls++
		return fmt.Errorf("failure %d", attempt)
	}, nil)
	if err == nil || err.Error() != "failure 4" || calls != 4 || len(clock.waits) != 3 {
		t.Fatalf("err %v after %d calls and %d waits, want failure 4 after 4 and 3", err, calls, len(clock.waits))
	}
}

// TestDoStopsWithContext: a context that ends during a wait ends Do with
// the operation's last error; one already ended stops before any wait.
func TestDoStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	never := func(time.Duration) <-chan time.Time { cancel(); return nil }
	calls := 0
	err := Backoff{Base: time.Hour, Cap: time.Hour, After: never}.Do(ctx, func(int) error {
		calls++
		return errors.New("log unavailable")
	}, nil)
	if err == nil || err.Error() != "log unavailable" || calls != 1 || ctx.Err() == nil {
		t.Fatalf("err %v after %d calls, want the last error after 1", err, calls)
	}
	calls = 0
	err = Backoff{After: func(time.Duration) <-chan time.Time { t.Fatal("waited on an ended context"); return nil }}.Do(ctx, func(int) error {
		calls++
		return errors.New("again")
	}, nil)
	if err == nil || calls != 1 {
		t.Fatalf("err %v after %d calls on an ended context", err, calls)
	}
	if err := (Backoff{}).Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context: %v", err)
	}
}

func TestUniform(t *testing.T) {
	if Uniform(0) != 0 || Uniform(-time.Second) != 0 {
		t.Fatal("Uniform of a non-positive duration is not 0")
	}
	for range 1000 {
		if d := Uniform(3); d < 0 || d > 3 {
			t.Fatalf("Uniform(3) = %d", d)
		}
	}
}
