package broker

import (
	"fmt"
	"sync"

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

// Appended returns a channel that is closed when an entry is next
// published to any of parts, and a release function to call when done
// waiting (it may be called more than once). The signal is a hint: a
// publish the stream then refused (a writer's lost race) also closes it,
// so re-read the log after it. Call Appended before reading the end of the
// log, so that an append between the read and the wait is not missed.
func (b *Broker) Appended(parts ...Part) (<-chan struct{}, func(), error) {
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
			return nil, nil, err
		}
		chans, releases = append(chans, ch), append(releases, release)
	}
	if len(chans) == 1 {
		return chans[0], releaseAll, nil
	}
	// Several: one goroutine per partition forwards the first signal;
	// release stops them and waits.
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
	return anyCh, func() {
		stop.Do(func() {
			close(done)
			wg.Wait()
			releaseAll()
		})
	}, nil
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
