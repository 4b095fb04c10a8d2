package batch

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// rowBuffer holds the rows a lake writer has read but not yet written to
// files, by period and partition, each as a run of compactly encoded rows
// in offset order (about 60-80 bytes a row for a topic of
// sixteen fields, against some 700 as decoded events). Its size is what
// the writer's memory bound counts.
type rowBuffer struct {
	schema  event.Schema
	periods map[int64]map[int]*rowRun
	rows    int64
	bytes   int64 // capacity of the runs' blocks
	scratch []byte
}

// rowRun is one period's rows of one partition. Numbers are varints, each
// delta-encoded from the run's previous row where rows follow each other
// closely (offsets, event and ingest times). Rows are appended to blocks
// that start small and grow by doubling up to maxBlock, then stay at that
// size: a run never copies what it holds, wastes at most half its last
// block, and grows by at most maxBlock at a time (what the memory bound
// can be off by, per writer).
type rowRun struct {
	blocks               [][]byte
	rows                 int
	lastOff              int64
	lastTime, lastIngest int64
	firstOff             int64
	minTime, maxTime     int64
	// last is the buffer's row count when the run got its latest row.
	last int64
}

const (
	minBlock = 256
	maxBlock = 64 << 10
	// What a period and a run cost besides their blocks (map entries,
	// headers), counted with them.
	periodOverhead = 200
	runOverhead    = 150
)

func newRowBuffer(schema event.Schema) *rowBuffer {
	return &rowBuffer{schema: schema, periods: map[int64]map[int]*rowRun{}}
}

// add appends one event of partition part at offset off to the run of the
// period starting at period.
func (b *rowBuffer) add(period int64, part int, off int64, ev *event.Event) {
	byPart := b.periods[period]
	if byPart == nil {
		byPart = map[int]*rowRun{}
		b.periods[period] = byPart
		b.bytes += periodOverhead
	}
	r := byPart[part]
	if r == nil {
		r = &rowRun{firstOff: off, lastOff: off, minTime: ev.Time, maxTime: ev.Time}
		byPart[part] = r
		b.bytes += runOverhead
	}
	b.scratch = encodeRow(b.scratch[:0], b.schema, off-r.lastOff, ev, r.lastTime, r.lastIngest)
	row := b.scratch
	var blk []byte
	if n := len(r.blocks); n > 0 {
		blk = r.blocks[n-1]
	}
	if len(blk)+len(row) > cap(blk) {
		size := max(minBlock, min(2*cap(blk), maxBlock), len(row))
		blk = make([]byte, 0, size)
		r.blocks = append(r.blocks, blk)
		b.bytes += int64(size)
	}
	r.blocks[len(r.blocks)-1] = append(blk, row...)
	r.rows++
	r.lastOff, r.lastTime, r.lastIngest = off, ev.Time, ev.Ingest
	r.minTime, r.maxTime = min(r.minTime, ev.Time), max(r.maxTime, ev.Time)
	b.rows++
	r.last = b.rows
}

// settled returns how many rows the buffer holds in periods that got none
// of the last quiet rows added, and how many such periods there are: in a
// backfill that arrives roughly in time order, the periods it has moved
// past.
func (b *rowBuffer) settled(quiet int64) (rows int64, periods int) {
	for _, byPart := range b.periods {
		var n, last int64
		for _, r := range byPart {
			n += int64(r.rows)
			last = max(last, r.last)
		}
		if b.rows-last >= quiet {
			rows += n
			periods++
		}
	}
	return rows, periods
}

// encodeRow appends one event's encoding to d: the offset's delta, event
// and ingest times as deltas from the previous row's, the id, then per
// field a validity byte and the value.
func encodeRow(d []byte, schema event.Schema, offDelta int64, ev *event.Event, lastTime, lastIngest int64) []byte {
	d = binary.AppendUvarint(d, uint64(offDelta))
	d = binary.AppendVarint(d, ev.Time-lastTime)
	d = binary.AppendVarint(d, ev.Ingest-lastIngest)
	d = binary.AppendUvarint(d, uint64(len(ev.ID)))
	d = append(d, ev.ID...)
	for i, f := range schema {
		var v event.Value
		if i < len(ev.Values) {
			v = ev.Values[i]
		}
		if !v.Valid {
			d = append(d, 0)
			continue
		}
		d = append(d, 1)
		switch f.Type {
		case event.TypeString:
			d = binary.AppendUvarint(d, uint64(len(v.S)))
			d = append(d, v.S...)
		case event.TypeDouble:
			d = binary.LittleEndian.AppendUint64(d, math.Float64bits(v.F))
		default:
			d = binary.AppendVarint(d, v.I)
		}
	}
	return d
}

// drop removes partition part's rows (the buffer's byte count stays: the
// blocks are given back with the buffer).
func (b *rowBuffer) drop(part int) {
	for period, byPart := range b.periods {
		if r := byPart[part]; r != nil {
			b.rows -= int64(r.rows)
			delete(byPart, part)
		}
		if len(byPart) == 0 {
			delete(b.periods, period)
		}
	}
}

// sortedPeriods lists the buffer's periods in order.
func (b *rowBuffer) sortedPeriods() []int64 {
	ps := make([]int64, 0, len(b.periods))
	for p := range b.periods {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// rowRef is one buffered row, by where it lies in its run: what a period's
// rows are sorted by (event time, then partition and offset) and where the
// rest of the row (its id and values, which are encoded without reference
// to the row before) starts. A row never spans blocks.
type rowRef struct {
	time, off, ingest int64
	part              int32
	blk, pos          int32 // block (in periodReader.blocks) and offset in it
}

// periodReader decodes the runs of one period back into events, in event
// time order (ties by partition, then offset), a chunk at a time: a file
// holds its rows in time order, which is what event-time columns and the
// columns that follow them (timestamps, hours, clock times) compress best
// in, whatever order the events arrived in. Sorting takes an index of 40
// bytes a buffered row of the period (reused from period to period); the
// rows themselves stay encoded in the run's blocks until written. The
// events' strings point into those blocks, which must stay unchanged while
// they are used. It is not safe for concurrent use.
type periodReader struct {
	schema event.Schema
	blocks [][]byte
	refs   []rowRef
	done   int
	evs    []event.Event
	offs   []int64
	parts  []int32
	vals   []event.Value
}

// reset indexes the runs (by partition) of one period and sorts the index.
func (pr *periodReader) reset(runs map[int]*rowRun) error {
	clear(pr.blocks)
	pr.blocks, pr.refs, pr.done = pr.blocks[:0], pr.refs[:0], 0
	for part, r := range runs {
		off, time, ingest := r.firstOff, int64(0), int64(0)
		for _, blk := range r.blocks {
			bi := int32(len(pr.blocks))
			pr.blocks = append(pr.blocks, blk)
			for d := blk; len(d) > 0; {
				du, k := binary.Uvarint(d)
				if k <= 0 {
					return errors.New("lake: buffered row damaged")
				}
				d = d[k:]
				// The first row's delta is from firstOff to itself: zero.
				off += int64(du)
				dt, k := binary.Varint(d)
				d = d[k:]
				time += dt
				di, k := binary.Varint(d)
				d = d[k:]
				ingest += di
				pos := len(blk) - len(d)
				n, err := tailLen(d, pr.schema)
				if err != nil {
					return err
				}
				d = d[n:]
				pr.refs = append(pr.refs, rowRef{time: time, off: off, ingest: ingest, part: int32(part), blk: bi, pos: int32(pos)})
			}
		}
	}
	slices.SortFunc(pr.refs, func(a, b rowRef) int {
		return cmp.Or(cmp.Compare(a.time, b.time), cmp.Compare(a.part, b.part), cmp.Compare(a.off, b.off))
	})
	return nil
}

// tailLen returns the length of a row's id and values at the start of d.
func tailLen(d []byte, schema event.Schema) (int, error) {
	n := 0
	// skip moves past a varint of k bytes (k <= 0: damaged) then the l
	// bytes it counts.
	skip := func(l uint64, k int) bool {
		if k <= 0 || l > uint64(len(d)-n-k) {
			return false
		}
		n += k + int(l)
		return true
	}
	ok := skip(binary.Uvarint(d))
	for _, f := range schema {
		if !ok || n >= len(d) {
			return 0, errors.New("lake: buffered row damaged")
		}
		valid := d[n] == 1
		n++
		if !valid {
			continue
		}
		switch f.Type {
		case event.TypeString:
			ok = skip(binary.Uvarint(d[n:]))
		case event.TypeDouble:
			ok = n+8 <= len(d)
			n += 8
		default:
			_, k := binary.Varint(d[n:])
			ok = skip(0, k)
		}
	}
	if !ok {
		return 0, errors.New("lake: buffered row damaged")
	}
	return n, nil
}

// next decodes up to n rows in order, with their partitions and offsets;
// it returns no events when the period is used up. The slices are reused
// by the next call.
func (pr *periodReader) next(n int) ([]event.Event, []int32, []int64) {
	n = min(n, len(pr.refs)-pr.done)
	width := len(pr.schema)
	if cap(pr.evs) < n {
		pr.evs = make([]event.Event, n)
		pr.offs = make([]int64, n)
		pr.parts = make([]int32, n)
		pr.vals = make([]event.Value, n*width)
	}
	evs, offs, parts := pr.evs[:n], pr.offs[:n], pr.parts[:n]
	for j, ref := range pr.refs[pr.done : pr.done+n] {
		d := pr.blocks[ref.blk][ref.pos:]
		l, k := binary.Uvarint(d)
		d = d[k:]
		e := &evs[j]
		e.ID = unsafe.String(unsafe.SliceData(d), int(l))
		d = d[l:]
		e.Time, e.Ingest = ref.time, ref.ingest
		e.Values = pr.vals[j*width : (j+1)*width : (j+1)*width]
		for i, f := range pr.schema {
			valid := d[0] == 1
			d = d[1:]
			if !valid {
				e.Values[i] = event.Value{}
				continue
			}
			switch f.Type {
			case event.TypeString:
				l, k := binary.Uvarint(d)
				d = d[k:]
				e.Values[i] = event.Value{S: unsafe.String(unsafe.SliceData(d), int(l)), Valid: true}
				d = d[l:]
			case event.TypeDouble:
				e.Values[i] = event.Value{F: math.Float64frombits(binary.LittleEndian.Uint64(d)), Valid: true}
				d = d[8:]
			default:
				v, k := binary.Varint(d)
				d = d[k:]
				e.Values[i] = event.Value{I: v, Valid: true}
			}
		}
		offs[j], parts[j] = ref.off, ref.part
	}
	pr.done += n
	return evs, parts, offs
}

// rewind starts the period over: next decodes its first rows again.
func (pr *periodReader) rewind() { pr.done = 0 }

// release drops the references to the period's blocks.
func (pr *periodReader) release() {
	clear(pr.blocks)
	pr.blocks = pr.blocks[:0]
}

// memBudget bounds the bytes of rows that the lake writers of a process
// hold in memory (lake.buffer). A writer whose buffer would take the total
// past the limit waits until flushes have freed room; past half of it, the
// writer with the largest buffer is asked to flush.
type memBudget struct {
	limit int64

	mu      sync.Mutex
	used    int64
	peak    int64         // the most ever held (tests check the bound)
	freed   chan struct{} // closed (and replaced) whenever bytes are freed
	writers []*topicWriter
}

func newMemBudget(limit int64) *memBudget {
	return &memBudget{limit: limit, freed: make(chan struct{})}
}

// take counts n more bytes held; it returns whether the total is past half
// the limit (time for the largest buffer to be flushed).
func (m *memBudget) take(n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used += n
	m.peak = max(m.peak, m.used)
	return m.used >= m.limit/2
}

// give counts n bytes freed and wakes writers waiting for room.
func (m *memBudget) give(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used -= n
	close(m.freed)
	m.freed = make(chan struct{})
}

// wait blocks while the total is at or past the limit.
func (m *memBudget) wait(ctx context.Context) error {
	for {
		m.mu.Lock()
		if m.used < m.limit {
			m.mu.Unlock()
			return nil
		}
		ch := m.freed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// register adds a writer to those pressure chooses from.
func (m *memBudget) register(tw *topicWriter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writers = append(m.writers, tw)
}

// pressure asks the writer with the largest buffer to flush.
func (m *memBudget) pressure() {
	m.mu.Lock()
	ws := slices.Clone(m.writers)
	m.mu.Unlock()
	var big *topicWriter
	var most int64
	for _, tw := range ws {
		if n := tw.bufferedBytes(); n > most {
			big, most = tw, n
		}
	}
	if big != nil {
		big.requestFlush()
	}
}

// inUse returns the bytes held.
func (m *memBudget) inUse() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}
