package elasticsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// maxIDBytes is Elasticsearch's limit on a document _id.
const maxIDBytes = 512

// doc is one row ready for the bulk API: a document to index, or to
// delete (no body).
type doc struct {
	row    int // index into the rows passed to Write
	index  string
	id     string
	body   []byte
	delete bool
}

// Write indexes rows with the bulk API, each under its deterministic _id,
// so writing a row again replaces its document; a row to delete
// (sinks.Row.Delete) deletes its document, and one that is not there is no
// error. Within one call a later row for the same document replaces an
// earlier one before anything is sent. Refresh is left to the index's
// refresh interval.
//
// Items refused with 429 (es_rejected_execution_exception: the node's write
// queue is full) are resent a few times with backoff; if some are still
// refused, or an item fails for a reason that is not the document's fault
// (shard unavailable, index read-only), Write returns a transient error and
// the runner retries the batch. Documents the cluster refuses (a value that
// does not fit the mapping: mapper_parsing_exception, illegal_argument_exception,
// any other 400) and rows that cannot be made a document (NaN, an _id too
// long) come back as sinks.RowErrors, the rest written.
func (s *Sink) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	if len(rows) == 0 {
		return nil
	}
	enc, err := newEncoder(t)
	if err != nil {
		return fmt.Errorf("elasticsearch sink %q: table %s: %w: %w", s.spec.Name, t.Name, err, sinks.ErrPermanent)
	}
	var rowErrs sinks.RowErrors
	docs := make([]doc, 0, len(rows))
	pos := make(map[[2]string]int, len(rows)) // index, _id -> position in docs
	for i, r := range rows {
		d, err := enc.doc(r)
		if err != nil {
			rowErrs = append(rowErrs, sinks.RowError{Index: i, Err: err})
			continue
		}
		d.row = i
		d.index = s.pattern.index(t.Name, r.Time)
		k := [2]string{d.index, d.id}
		if j, ok := pos[k]; ok {
			docs[j] = d // the later row wins, in the earlier one's place
			continue
		}
		pos[k] = len(docs)
		docs = append(docs, d)
	}

	refused, err := s.bulkAll(ctx, docs)
	if err != nil {
		return fmt.Errorf("elasticsearch sink %q: write %s: %w", s.spec.Name, t.Name, err)
	}
	rowErrs = append(rowErrs, refused...)
	if len(rowErrs) > 0 {
		slices.SortFunc(rowErrs, func(a, b sinks.RowError) int { return a.Index - b.Index })
		return rowErrs
	}
	return nil
}

// bulkAll sends docs in bulk requests of at most maxBulkBytes, cut so that
// bulkInFlight of them run at once: a node indexes one bulk's shard request
// on one write thread, so a single request leaves the other cores idle
// while the client waits.
func (s *Sink) bulkAll(ctx context.Context, docs []doc) (sinks.RowErrors, error) {
	per := max(minBulkDocs, (len(docs)+bulkInFlight-1)/bulkInFlight)
	var chunks [][]doc
	for start := 0; start < len(docs); {
		end, size := start, 0
		for end < len(docs) && end-start < per && (end == start || size+len(docs[end].body) < maxBulkBytes) {
			size += len(docs[end].body) + len(docs[end].id) + len(docs[end].index) + 48
			end++
		}
		chunks = append(chunks, docs[start:end])
		start = end
	}
	if len(chunks) == 1 {
		return s.bulkWithRetry(ctx, chunks[0])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		refused sinks.RowErrors
		first   error
		wg      sync.WaitGroup
	)
	work := make(chan []doc)
	for range min(bulkInFlight, len(chunks)) {
		wg.Go(func() {
			for c := range work {
				bad, err := s.bulkWithRetry(ctx, c)
				mu.Lock()
				refused = append(refused, bad...)
				if err != nil && first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, c := range chunks {
		select {
		case work <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		return nil, first
	}
	return refused, nil
}

// bulkWithRetry indexes docs, resending the items refused with 429. It
// returns the documents refused for good, or an error when the batch must be
// retried.
func (s *Sink) bulkWithRetry(ctx context.Context, docs []doc) (sinks.RowErrors, error) {
	var refused sinks.RowErrors
	err := s.resend.Do(ctx, func(attempt int) error {
		rejected, bad, err := s.bulk(ctx, docs)
		if err != nil {
			return retry.Permanent(err)
		}
		refused = append(refused, bad...)
		if len(rejected) == 0 {
			return nil
		}
		docs = rejected
		return fmt.Errorf("%d documents still rejected for load (429) after %d retries", len(rejected), attempt-1)
	}, func(attempt int, err error, _ time.Duration) {
		s.log.Debug("bulk items rejected for load, resending", "items", len(docs), "attempt", attempt)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return refused, nil
}

// bulk sends one bulk request. It returns the documents refused with 429,
// the documents refused for good, and an error when the request failed as a
// whole or an item failed for a reason the document is not to blame for.
func (s *Sink) bulk(ctx context.Context, docs []doc) (rejected []doc, refused sinks.RowErrors, err error) {
	b := s.client.Bulk()
	for i := range docs {
		if docs[i].delete {
			b.Add(elastic.NewBulkDeleteRequest().Index(docs[i].index).Id(docs[i].id))
			continue
		}
		b.Add(elastic.NewBulkIndexRequest().Index(docs[i].index).Id(docs[i].id).Doc(json.RawMessage(docs[i].body)))
	}
	resp, err := b.Do(ctx)
	if err != nil {
		var e *elastic.Error
		if errors.As(err, &e) && e.Status == http.StatusTooManyRequests {
			return docs, nil, nil
		}
		return nil, nil, err
	}
	if !resp.Errors {
		return nil, nil, nil
	}
	if len(resp.Items) != len(docs) {
		return nil, nil, fmt.Errorf("bulk answered %d items for %d documents", len(resp.Items), len(docs))
	}
	var other error
	for i, item := range resp.Items {
		it := item["index"]
		if docs[i].delete {
			it = item["delete"]
			if it != nil && it.Status == http.StatusNotFound && it.Error == nil {
				continue // nothing to delete: a delete delivered again
			}
		}
		if it == nil || it.Error == nil && it.Status < 300 {
			continue
		}
		typ, reason := "", ""
		if it.Error != nil {
			typ, reason = it.Error.Type, it.Error.Reason
		}
		switch {
		case it.Status == http.StatusTooManyRequests || typ == "es_rejected_execution_exception":
			rejected = append(rejected, docs[i])
		case it.Status == http.StatusBadRequest:
			refused = append(refused, sinks.RowError{Index: docs[i].row,
				Err: fmt.Errorf("index %s, _id %s: %s: %s", docs[i].index, docs[i].id, typ, reason)})
		case other == nil:
			other = fmt.Errorf("index %s, _id %s: status %d: %s: %s", docs[i].index, docs[i].id, it.Status, typ, reason)
		}
	}
	if other != nil {
		return nil, nil, other
	}
	return rejected, refused, nil
}

// encoder turns rows of one table into documents.
type encoder struct {
	t      sinks.Table
	keys   []string // JSON object keys, `"name":`, per column; "" to skip
	keyIdx []int
	idCol  int // column holding the _id, or -1
}

func newEncoder(t sinks.Table) (*encoder, error) {
	e := &encoder{t: t, keys: make([]string, len(t.Columns)), idCol: -1}
	if idIsColumn(t) {
		e.idCol = t.Columns.Index(event.ColID)
	}
	for i, f := range t.Columns {
		if i == e.idCol {
			continue
		}
		k, _ := json.Marshal(f.Name)
		e.keys[i] = string(k) + ":"
	}
	for _, k := range t.Key {
		i := t.Columns.Index(k)
		if i < 0 {
			return nil, fmt.Errorf("key column %q is not a column", k)
		}
		e.keyIdx = append(e.keyIdx, i)
	}
	if len(e.keyIdx) == 0 {
		return nil, fmt.Errorf("no key")
	}
	return e, nil
}

// doc encodes one row. Nulls are left out of the document; a row to delete
// has its _id only.
func (e *encoder) doc(r sinks.Row) (doc, error) {
	if len(r.Values) != len(e.t.Columns) {
		return doc{}, fmt.Errorf("row has %d values, table %s has %d columns", len(r.Values), e.t.Name, len(e.t.Columns))
	}
	var d doc
	if e.idCol >= 0 {
		v := r.Values[e.idCol]
		if !v.Valid || v.S == "" {
			return doc{}, fmt.Errorf("empty %s", event.ColID)
		}
		d.id = v.S
	} else {
		id := []byte{'['}
		for j, i := range e.keyIdx {
			if j > 0 {
				id = append(id, ',')
			}
			var err error
			if id, err = appendValue(id, e.t.Columns[i].Type, r.Values[i]); err != nil {
				return doc{}, fmt.Errorf("column %q: %w", e.t.Columns[i].Name, err)
			}
		}
		d.id = string(append(id, ']'))
	}
	if len(d.id) > maxIDBytes {
		return doc{}, fmt.Errorf("_id is %d bytes, Elasticsearch allows %d", len(d.id), maxIDBytes)
	}
	if r.Delete {
		d.delete = true
		return d, nil
	}
	b := make([]byte, 0, 32*len(r.Values))
	b = append(b, '{')
	first := true
	for i, v := range r.Values {
		if e.keys[i] == "" || !v.Valid {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, e.keys[i]...)
		var err error
		if b, err = appendValue(b, e.t.Columns[i].Type, v); err != nil {
			return doc{}, fmt.Errorf("column %q: %w", e.t.Columns[i].Name, err)
		}
	}
	d.body = append(b, '}')
	return d, nil
}

// Times are written in event.TimeLayoutMicros, so _source holds the exact
// event time. Not event.TimeLayout, which drops trailing zeros: a view
// document's _id holds window_start in this form
// (["eu","2024-03-01T12:00:00.000000Z"]), and another form would give the
// windows already indexed new _ids, so that their next correction would add
// a second document instead of replacing the first.

// appendValue appends v as JSON, as event.AppendValueJSON does but for
// timestamps (event.TimeLayoutMicros) and for what JSON cannot hold, which
// is an error here instead of null: a document must hold the row's values.
func appendValue(b []byte, t event.FieldType, v event.Value) ([]byte, error) {
	if !v.Valid {
		return append(b, "null"...), nil
	}
	switch t {
	case event.TypeTimestamp:
		b = append(b, '"')
		b = time.UnixMicro(v.I).UTC().AppendFormat(b, event.TimeLayoutMicros)
		return append(b, '"'), nil
	case event.TypeDouble:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			return nil, fmt.Errorf("%v cannot be written as JSON", v.F)
		}
	case event.TypeString, event.TypeLong, event.TypeInt, event.TypeBool:
	default:
		return nil, fmt.Errorf("unsupported type %v", t)
	}
	return event.AppendValueJSON(b, t, v), nil
}
