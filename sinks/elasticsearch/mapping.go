package elasticsearch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// fieldMapping is the mapping of one field type.
func fieldMapping(t event.FieldType) (map[string]any, error) {
	switch t {
	case event.TypeString:
		// Lucene refuses a term over 32766 bytes, which would refuse the
		// whole document; past ignore_above the string stays in _source
		// but is not indexed. 8191 characters are at most 32764 bytes.
		return map[string]any{"type": "keyword", "ignore_above": 8191}, nil
	case event.TypeLong:
		return map[string]any{"type": "long"}, nil
	case event.TypeInt:
		return map[string]any{"type": "integer"}, nil
	case event.TypeDouble:
		return map[string]any{"type": "double"}, nil
	case event.TypeBool:
		return map[string]any{"type": "boolean"}, nil
	case event.TypeTimestamp:
		return map[string]any{"type": "date", "format": "strict_date_optional_time||epoch_millis"}, nil
	}
	return nil, fmt.Errorf("field type %v has no mapping", t)
}

// idIsColumn tells whether t's document _id is its _id column (a topic),
// which then stays out of the source.
func idIsColumn(t sinks.Table) bool {
	return len(t.Key) == 1 && t.Key[0] == event.ColID
}

// mappings is the index mapping of t. Dynamic mapping is off: a field the
// pipeline does not declare is kept in _source but not indexed, so a stray
// field cannot fix a wrong type in the mapping for good.
func mappings(t sinks.Table) (map[string]any, error) {
	props := make(map[string]any, len(t.Columns))
	for _, f := range t.Columns {
		if f.Name == event.ColID && idIsColumn(t) {
			continue
		}
		m, err := fieldMapping(f.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		props[f.Name] = m
	}
	return map[string]any{"dynamic": false, "properties": props}, nil
}

// Prepare makes t's indices ready. With create: true it puts an index
// template named after t (see templateName) matching t's indices (a composable template, or a
// legacy one on Elasticsearch before 7.8), creates the index when the
// pattern has no date, and adds new fields to the mappings of t's existing
// indices. A field whose type differs from an existing mapping fails with
// ErrPermanent, as does a name Elasticsearch cannot use as an index.
// Without create: true it only checks the index name.
func (s *Sink) Prepare(ctx context.Context, t sinks.Table) error {
	sample := s.pattern.index(t.Name, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	if err := validIndexName(sample); err != nil {
		return fmt.Errorf("elasticsearch sink %q: table %s: %w: %w", s.spec.Name, t.Name, err, sinks.ErrPermanent)
	}
	if !s.spec.Create {
		return nil
	}
	m, err := mappings(t)
	if err != nil {
		return fmt.Errorf("elasticsearch sink %q: table %s: %w: %w", s.spec.Name, t.Name, err, sinks.ErrPermanent)
	}
	pattern := s.pattern.wildcard(t.Name)
	if err := s.putTemplate(ctx, s.pattern.templateName(t.Name), pattern, m); err != nil {
		return err
	}
	if !s.pattern.hasDate {
		_, err := s.client.CreateIndex(pattern).BodyJson(map[string]any{"mappings": m}).Do(ctx)
		if err != nil && !isErrType(err, "resource_already_exists_exception") {
			return s.apiError("create index "+pattern, err)
		}
	}
	_, err = s.client.PutMapping().Index(pattern).
		IgnoreUnavailable(true).AllowNoIndices(true).
		BodyJson(map[string]any{"properties": m["properties"]}).Do(ctx)
	if err != nil {
		return s.apiError("update mappings of "+pattern, err)
	}
	return nil
}

func (s *Sink) putTemplate(ctx context.Context, name, pattern string, m map[string]any) error {
	_, err := s.client.IndexPutIndexTemplate(name).BodyJson(map[string]any{
		"index_patterns": []string{pattern},
		"priority":       templatePriority,
		"template":       map[string]any{"mappings": m},
		"_meta":          map[string]any{"managed_by": "lambdaflow", "sink": s.spec.Name},
	}).Do(ctx)
	if err == nil {
		return nil
	}
	// Before 7.8 there is no _index_template endpoint.
	if !elastic.IsNotFound(err) && !elastic.IsStatusCode(err, http.StatusMethodNotAllowed) &&
		!isErrType(err, "invalid_index_template_exception") {
		return s.apiError("put index template "+name, err)
	}
	s.log.Info("composable index templates unsupported, using a legacy template", "err", err)
	_, err = s.client.IndexPutTemplate(name).BodyJson(map[string]any{
		"index_patterns": []string{pattern},
		"order":          templatePriority,
		"mappings":       m,
	}).Do(ctx)
	if err != nil {
		return s.apiError("put legacy template "+name, err)
	}
	return nil
}

// apiError wraps the failure of a schema request: a request the cluster
// refuses as invalid (400) is permanent, the rest transient.
func (s *Sink) apiError(what string, err error) error {
	var e *elastic.Error
	if errors.As(err, &e) && e.Status == http.StatusBadRequest {
		return fmt.Errorf("elasticsearch sink %q: %s: %w: %w", s.spec.Name, what, err, sinks.ErrPermanent)
	}
	return fmt.Errorf("elasticsearch sink %q: %s: %w", s.spec.Name, what, err)
}

// isErrType tells whether err is an Elasticsearch error of type typ.
func isErrType(err error, typ string) bool {
	var e *elastic.Error
	return errors.As(err, &e) && e.Details != nil && e.Details.Type == typ
}
