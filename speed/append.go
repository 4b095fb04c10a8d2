package speed

import (
	"context"
	"fmt"
	"math"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// appendMax bounds the events of one append of rows or partial states.
const appendMax = 1000

// appendBytes bounds the estimated size of one append of partial states,
// half NATS' default max_payload (1 MiB, an external cluster's unless it
// raised it): a state is as large as its aggregate's sketch, and the
// batches of a busy run are appended together.
const appendBytes = 512 << 10

// entryLen is how many of events, from the first, go in one entry: at most
// appendMax and appendBytes (estimated, broker.EventSize), at least one.
func entryLen(events []event.Event) int {
	size := 0
	for i := range events {
		size += broker.EventSize(&events[i])
		if i == appendMax || (i > 0 && size > appendBytes) {
			return i
		}
	}
	return len(events)
}

// landed is one append of rows that is durable: the partition, the offset
// after it, and the range of its final rows (from < 0: none).
type landed struct {
	part  int
	end   int64
	final finalRange
}

// appendScratch is the reusable memory of appendBatch, one per goroutine.
type appendScratch struct {
	byPart [][]viewrow.Row
	events []event.Event
	landed []landed
}

// appendBatch appends rows to the view's topic, each to the partition of
// its group as the batch layer does (so that a later batch correction of a
// window lands after the speed rows in the same partition), in order, in
// entries of at most appendMax rows, and returns what landed, up to an
// error. It reads only the emitter's fixed fields (append, topic, parts), so
// an appender runs it on a goroutine of its own. The result aliases sc.
func (em *emitter) appendBatch(ctx context.Context, rows []viewrow.Row, sc *appendScratch) ([]landed, error) {
	if len(sc.byPart) != em.parts {
		sc.byPart = make([][]viewrow.Row, em.parts)
	}
	for _, r := range rows {
		p := event.ViewRowPartition(r.Group, em.parts)
		sc.byPart[p] = append(sc.byPart[p], r)
	}
	defer func() {
		for p := range sc.byPart {
			clear(sc.byPart[p])
			sc.byPart[p] = sc.byPart[p][:0]
		}
	}()
	sc.landed = sc.landed[:0]
	for p, rows := range sc.byPart {
		for len(rows) > 0 {
			n := min(len(rows), appendMax)
			l, err := em.appendRows(ctx, p, rows[:n], sc)
			if err != nil {
				return sc.landed, err
			}
			sc.landed = append(sc.landed, l)
			rows = rows[n:]
		}
	}
	return sc.landed, nil
}

// appendRows appends rows as one entry of partition part.
func (em *emitter) appendRows(ctx context.Context, part int, rows []viewrow.Row, sc *appendScratch) (landed, error) {
	sc.events = sc.events[:0]
	final := finalRange{from: -1, maxEnd: math.MinInt64}
	finalAt, finalTo := -1, -1
	for i := range rows {
		r := &rows[i]
		sc.events = append(sc.events, r.Event(rowID(*r)))
		if r.Final {
			final.maxEnd = max(final.maxEnd, r.End)
			if finalAt < 0 {
				finalAt = i
			}
			finalTo = i + 1
		}
	}
	first, err := em.append(ctx, em.topic, part, sc.events)
	clear(sc.events)
	if err != nil {
		return landed{}, fmt.Errorf("speed: view %q: append rows to topic %q partition %d: %w", em.view, em.topic, part, err)
	}
	if finalAt >= 0 {
		final.from, final.to = first+int64(finalAt), first+int64(finalTo)
	}
	return landed{part: part, end: first + int64(len(rows)), final: final}, nil
}

// appender appends a view's rows to its topic on a goroutine of its own,
// so that the view goes on computing while the log makes them durable:
// rows handed to it land in the order handed, a round at a time (every
// batch queued meanwhile in one append per partition), and each round's
// result goes back to the view's goroutine, which alone records it
// (emitter.land). After an error it stops: the view restarts from its
// checkpoint.
type appender struct {
	em  *emitter
	in  chan []viewrow.Row
	out chan appended
}

// appended is the result of one round of an appender.
type appended struct {
	landed []landed
	rows   int // rows of the round, landed or not
	err    error
}

// appenderQueue is how many batches of rows a view may hand an appender
// before it waits for the log.
const appenderQueue = 16

func newAppender(em *emitter) *appender {
	return &appender{em: em, in: make(chan []viewrow.Row, appenderQueue), out: make(chan appended)}
}

// run appends until in is closed or ctx ends.
func (a *appender) run(ctx context.Context) {
	var sc appendScratch
	for rows := range a.in {
	more:
		for {
			select {
			case next, ok := <-a.in:
				if !ok {
					break more
				}
				rows = append(rows, next...)
			default:
				break more
			}
		}
		ls, err := a.em.appendBatch(ctx, rows, &sc)
		res := appended{landed: append([]landed(nil), ls...), rows: len(rows), err: err}
		select {
		case a.out <- res:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}
