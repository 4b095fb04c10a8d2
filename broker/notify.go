package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// appendWatch tells waiters of one partition that an entry was appended,
// by any writer in any process. It listens to the partition's subject with
// a plain NATS subscription, which exists only while someone waits.
type appendWatch struct {
	mu      sync.Mutex
	waiters int
	sub     *nats.Subscription
	ch      chan struct{} // closed at the next append, then replaced
}

// Part names one partition of a topic.
type Part struct {
	Topic     string
	Partition int
}

// Watch signals appends to some partitions; see Appended.
type Watch struct {
	ch      <-chan struct{}
	release func()
}

// Appended starts watching parts for appends by any writer in any
// process. Call it before reading the end of the log, then Wait: an append
// between the read and the wait still ends the wait. The signal is a hint:
// a publish the stream then refused (a writer's lost race) also ends it, so
// re-read the log after it. Release the watch when done.
func (b *Broker) Appended(parts ...Part) (*Watch, error) {
	var chans []<-chan struct{}
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, pt := range parts {
		ch, release, err := b.appended(pt.Topic, pt.Partition)
		if err != nil {
			releaseAll()
			return nil, err
		}
		chans, releases = append(chans, ch), append(releases, release)
	}
	if len(chans) == 1 {
		return &Watch{ch: chans[0], release: releaseAll}, nil
	}
	// Several: one goroutine per partition forwards the first signal;
	// Release stops them and waits for them.
	anyCh, done := make(chan struct{}), make(chan struct{})
	var once, stop sync.Once
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Go(func() {
			select {
			case <-ch:
				once.Do(func() { close(anyCh) })
			case <-done:
			}
		})
	}
	return &Watch{ch: anyCh, release: func() {
		stop.Do(func() {
			close(done)
			wg.Wait()
			releaseAll()
		})
	}}, nil
}

// Wait waits until an append to a watched partition, the deadline or the
// end of ctx, and reports whether an append came. A nil Watch waits for
// the deadline alone.
func (w *Watch) Wait(ctx context.Context, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var ch <-chan struct{}
	if w != nil {
		ch = w.ch
	}
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// Release ends the watch; it may be called more than once, and on nil.
func (w *Watch) Release() {
	if w != nil {
		w.release()
	}
}

func (b *Broker) appended(topicName string, part int) (<-chan struct{}, func(), error) {
	_, p, err := b.partition(topicName, part)
	if err != nil {
		return nil, nil, err
	}
	if b.isClosed() {
		return nil, nil, ErrClosed
	}
	w := &p.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sub == nil {
		w.ch = make(chan struct{})
		sub, err := b.nc.Subscribe(p.subject, func(*nats.Msg) {
			w.mu.Lock()
			close(w.ch)
			w.ch = make(chan struct{})
			w.mu.Unlock()
		})
		if err != nil {
			return nil, nil, fmt.Errorf("broker: watch %q/%d: %w", topicName, part, unavailable(err))
		}
		// Entries are up to a megabyte each; a slow waiter must not make
		// the client drop the connection's other traffic.
		_ = sub.SetPendingLimits(-1, 64<<20)
		w.sub = sub
	}
	w.waiters++
	ch := w.ch
	var once sync.Once
	release := func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.waiters--
			if w.waiters == 0 && w.sub != nil {
				_ = w.sub.Unsubscribe()
				w.sub = nil
			}
		})
	}
	return ch, release, nil
}
