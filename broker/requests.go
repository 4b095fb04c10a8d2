package broker

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
)

// Request is one NATS request a Serve handler answers.
type Request struct {
	Subject string
	Data    []byte
	Header  map[string][]string
}

// Reply is a handler's answer: its payload and an HTTP-like status, sent
// in the header Lf-Status.
type Reply struct {
	Status int
	Data   []byte
}

// HeaderStatus carries a Reply's status.
const HeaderStatus = "Lf-Status"

// maxServing bounds the requests a Serve handles at once; more wait in
// the subscription's buffer.
const maxServing = 256

// PublishSubject is the subject NATS-native services publish events of
// topic to: "<prefix lowercased>.publish.<topic>" (docs/log-format.md).
func (b *Broker) PublishSubject(topic string) string {
	return b.subject + ".publish." + topic
}

// Serve answers requests on subject (which may end in a wildcard) in
// queue group queue, so that each request is answered by one of the
// processes serving it, until ctx is done. Requests are handled
// concurrently, at most maxServing at a time, each with a context that
// ends with ctx; Serve returns once every handler has returned.
func (b *Broker) Serve(ctx context.Context, subject, queue string, fn func(context.Context, Request) Reply) error {
	if b.isClosed() {
		return ErrClosed
	}
	msgs := make(chan *nats.Msg, maxServing)
	sub, err := b.nc.ChanQueueSubscribe(subject, queue, msgs)
	if err != nil {
		return fmt.Errorf("broker: serve %s: %w", subject, unavailable(err))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxServing)
	defer func() {
		_ = sub.Unsubscribe()
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Go(func() {
				defer func() { <-sem }()
				r := fn(ctx, Request{Subject: m.Subject, Data: m.Data, Header: m.Header})
				if m.Reply == "" {
					return // a plain publish: nobody waits for the answer
				}
				out := &nats.Msg{Subject: m.Reply, Data: r.Data, Header: nats.Header{HeaderStatus: []string{strconv.Itoa(r.Status)}}}
				if err := b.nc.PublishMsg(out); err != nil {
					b.log.Warn("broker: answering a request", "subject", m.Subject, "err", err)
				}
			})
		}
	}
}
