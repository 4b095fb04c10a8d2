package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// pullGoroutines counts the goroutines of live JetStream pull
// subscriptions: each Messages iterator runs one pullMessages loop until it
// is stopped.
func pullGoroutines() int {
	return goroutinesIn("jetstream.(*pullSubscription).pullMessages")
}

// streamConsumers returns the names of the consumers the server holds on
// p's stream.
func streamConsumers(ctx context.Context, b *Broker, p *partition) ([]string, error) {
	st, err := b.js.Stream(ctx, p.stream)
	if err != nil {
		return nil, err
	}
	var names []string
	lister := st.ConsumerNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	return names, lister.Err()
}

// readerConsumer returns the one consumer on p's stream that is not in
// seen, and adds it there.
func readerConsumer(ctx context.Context, t *testing.T, b *Broker, p *partition, seen map[string]bool) string {
	t.Helper()
	names, err := streamConsumers(ctx, b, p)
	if err != nil {
		t.Fatalf("consumers: %v", err)
	}
	var fresh []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			fresh = append(fresh, n)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("%d new consumers on the stream, want the reader's one: %v", len(fresh), fresh)
	}
	return fresh[0]
}

// TestReaderCloseWhileConsumerFails closes readers while their consumers
// fail (deleted on the server, as when the node holding one goes away) and
// are created again: a Close landing while that happens must stop the new
// consumer too. Afterwards no pull subscription is left running in the
// process, and no consumer on the server.
func TestReaderCloseWhileConsumerFails(t *testing.T) {
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	logs := &logCounter{}
	b := openBroker(t, p, Options{Logger: slog.New(logs)})
	ctx := ctxT(t, 120*time.Second)
	if _, err := b.Append(ctx, "metrics", 0, testEvents("e", 0, 3, base)); err != nil {
		t.Fatal(err)
	}
	_, part, err := b.partition("metrics", 0)
	if err != nil {
		t.Fatal(err)
	}
	running := pullGoroutines()
	const rounds = 150
	seen := map[string]bool{}
	for i := range rounds {
		// Consumers left by earlier rounds are not this round's reader's.
		before, err := streamConsumers(ctx, b, part)
		if err != nil {
			t.Fatalf("round %d: consumers: %v", i, err)
		}
		for _, n := range before {
			seen[n] = true
		}
		r, err := b.Reader(ctx, "metrics", 0, FromStart())
		if err != nil {
			t.Fatalf("round %d: Reader: %v", i, err)
		}
		if e, err := r.Next(ctx); err != nil || e.Offset != 0 {
			t.Fatalf("round %d: Next: offset %d, %v", i, e.Offset, err)
		}
		name := readerConsumer(ctx, t, b, part, seen)
		// The caller waits for the next entry, as the speed layer does,
		// while the consumer is deleted: the reader hears of it at once
		// and creates its consumer again.
		reading := make(chan error, 1)
		go func() {
			_, err := r.Next(ctx)
			reading <- err
		}()
		if err := b.js.DeleteConsumer(ctx, part.stream, name); err != nil {
			t.Fatalf("round %d: delete consumer %s: %v", i, name, err)
		}
		// Vary where the Close lands: while the reader hears of the
		// failure (even rounds), or while it creates its consumer again
		// after the first backoff (odd rounds).
		d := time.Duration(i%50) * 40 * time.Microsecond
		if i%2 == 1 {
			d += readerBackoff.Delay(1)
		}
		time.Sleep(d)
		r.Close()
		if err := <-reading; !errors.Is(err, ErrClosed) {
			t.Fatalf("round %d: Next after Close: %v, want ErrClosed", i, err)
		}
	}
	t.Logf("%d rounds: %d failures heard, %d consumers created again", rounds,
		logs.count("broker: reader failed"), logs.count("broker: reader created again"))
	testenv.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		if n := pullGoroutines(); n != running {
			return fmt.Errorf("%d pull subscriptions still running after %d readers closed", n-running, rounds)
		}
		return nil
	})
	testenv.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		names, err := streamConsumers(ctx, b, part)
		if err != nil {
			return err
		}
		if len(names) != 0 {
			return fmt.Errorf("%d consumers left on the stream after %d readers closed: %v", len(names), rounds, names[:min(len(names), 5)])
		}
		return nil
	})
}

// TestReaderReplacesDeletedConsumer deletes a reader's consumer between
// entries: the reader creates a new one after the last entry it returned
// and goes on with the next, every event once and in order, and the
// deleted consumer is not left running beside the new one.
func TestReaderReplacesDeletedConsumer(t *testing.T) {
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	logs := &logCounter{}
	b := openBroker(t, p, Options{Logger: slog.New(logs)})
	ctx := ctxT(t, 60*time.Second)
	for i := range 3 {
		if _, err := b.Append(ctx, "metrics", 0, testEvents("e", 2*i, 2, base)); err != nil {
			t.Fatal(err)
		}
	}
	_, part, err := b.partition("metrics", 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Reader(ctx, "metrics", 0, FromOffset(1))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seen := map[string]bool{}
	var ids []string
	next := func() {
		t.Helper()
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %v: %v", ids, err)
		}
		for _, ev := range e.Events {
			ids = append(ids, ev.ID)
		}
	}
	next() // e-1 (the entry holding offset 1, from it on)
	next() // e-2, e-3
	for round := range 3 {
		name := readerConsumer(ctx, t, b, part, seen)
		if err := b.js.DeleteConsumer(ctx, part.stream, name); err != nil {
			t.Fatalf("round %d: delete consumer %s: %v", round, name, err)
		}
		if _, err := b.Append(ctx, "metrics", 0, testEvents("e", 6+2*round, 2, base)); err != nil {
			t.Fatal(err)
		}
		next()
		if round == 0 {
			next() // e-4, e-5 were appended before the deletion
		}
	}
	want := []string{"e-1", "e-2", "e-3", "e-4", "e-5", "e-6", "e-7", "e-8", "e-9", "e-10", "e-11"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", ids, want)
	}
	if n := logs.count("broker: reader failed; creating it again"); n != 3 {
		t.Errorf("%d reader failures logged, want 3 (one per deletion)", n)
	}
	names, err := streamConsumers(ctx, b, part)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("%d consumers on the stream, want the reader's one: %v", len(names), names)
	}
}

// TestReaderRecreatesUnderShortPolls polls Next with deadlines far
// shorter than creating a consumer takes, as a caller waiting a poll
// interval at a time does while the cluster is slow: the re-creation of a
// deleted consumer is not abandoned at each deadline, and the next entry
// arrives.
func TestReaderRecreatesUnderShortPolls(t *testing.T) {
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	b := openBroker(t, p, Options{})
	ctx := ctxT(t, 60*time.Second)
	mustAppend(t, b, "metrics", 0, testEvents("e", 0, 1, base), 0)
	_, part, err := b.partition("metrics", 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Reader(ctx, "metrics", 0, FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, err := r.Next(ctx); err != nil || e.Offset != 0 {
		t.Fatalf("Next: offset %d, %v", e.Offset, err)
	}
	name := readerConsumer(ctx, t, b, part, map[string]bool{})
	if err := b.js.DeleteConsumer(ctx, part.stream, name); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, "metrics", 0, testEvents("e", 1, 1, base), 1)
	polls := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Microsecond)
		e, err := r.Next(pctx)
		cancel()
		polls++
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		if err != nil || e.Offset != 1 || e.Events[0].ID != "e-1" {
			t.Fatalf("Next after %d polls: %+v, %v; want e-1 at offset 1", polls, e, err)
		}
		break
	}
	t.Logf("e-1 after %d polls", polls)
}
