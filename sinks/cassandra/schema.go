package cassandra

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gocql/gocql"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// cqlType is the CQL type a field type is stored as.
func cqlType(t event.FieldType) (string, error) {
	switch t {
	case event.TypeString:
		return "text", nil
	case event.TypeLong:
		return "bigint", nil
	case event.TypeInt:
		return "int", nil
	case event.TypeDouble:
		return "double", nil
	case event.TypeBool:
		return "boolean", nil
	case event.TypeTimestamp:
		return "timestamp", nil
	}
	return "", fmt.Errorf("field type %v has no CQL type", t)
}

// keyLayout splits a table's key into partition and clustering columns.
// A view's rows are clustered by window_start inside the partition of
// their group, so one group's windows are one partition read; a view
// without group-by has window_start alone as its partition key.
func keyLayout(t sinks.Table) (partition, clustering []string) {
	k := t.Key
	if t.View && len(k) > 1 && k[len(k)-1] == viewrow.ColWindowStart {
		return k[:len(k)-1], k[len(k)-1:]
	}
	return k, nil
}

// createTableCQL is the CREATE TABLE statement for t in keyspace ks.
func createTableCQL(ks string, t sinks.Table) (string, error) {
	if len(t.Key) == 0 {
		return "", fmt.Errorf("table %q has no key", t.Name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s.%s (", quote(ks), quote(t.Name))
	for _, f := range t.Columns {
		ct, err := cqlType(f.Type)
		if err != nil {
			return "", fmt.Errorf("column %q: %w", f.Name, err)
		}
		fmt.Fprintf(&b, "%s %s, ", quote(f.Name), ct)
	}
	for _, k := range t.Key {
		if t.Columns.Index(k) < 0 {
			return "", fmt.Errorf("key column %q is not a column of %q", k, t.Name)
		}
	}
	part, clust := keyLayout(t)
	b.WriteString("PRIMARY KEY ((")
	for i, k := range part {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(k))
	}
	b.WriteString(")")
	for _, k := range clust {
		b.WriteString(", ")
		b.WriteString(quote(k))
	}
	b.WriteString("))")
	return b.String(), nil
}

// insertCQL is the upsert of every column of t, with the sink's TTL.
func insertCQL(ks string, t sinks.Table, ttl int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s.%s (", quote(ks), quote(t.Name))
	for i, f := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(f.Name))
	}
	b.WriteString(") VALUES (")
	for i := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
	}
	b.WriteString(")")
	if ttl > 0 {
		fmt.Fprintf(&b, " USING TTL %d", ttl)
	}
	return b.String()
}

// deleteCQL removes the row of t with the given key, its values bound in
// t.Key order.
func deleteCQL(ks string, t sinks.Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "DELETE FROM %s.%s WHERE ", quote(ks), quote(t.Name))
	for i, k := range t.Key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, "%s = ?", quote(k))
	}
	return b.String()
}

// column is one row of system_schema.columns.
type column struct {
	typ  string
	kind string // partition_key, clustering or regular
}

// Prepare makes t's table ready. With create: true it creates the keyspace
// (SimpleStrategy, replication factor 1, when it is missing), the table, and
// the columns of new fields (ALTER TABLE … ADD); without it, it only checks
// that the table exists. An existing table whose key or column types differ
// from t's fails with ErrPermanent: writing into it would not be an upsert by
// t's key. Other errors (Cassandra down) are transient.
func (s *Sink) Prepare(ctx context.Context, t sinks.Table) error {
	sess, err := s.conn()
	if err != nil {
		return err
	}
	create, err := createTableCQL(s.keyspace, t)
	if err != nil {
		return fmt.Errorf("cassandra sink %q: %w: %w", s.spec.Name, err, sinks.ErrPermanent)
	}
	if s.spec.Create {
		if err := s.createKeyspace(ctx, sess); err != nil {
			return err
		}
		if err := sess.Query(create).WithContext(ctx).Exec(); err != nil {
			return s.ddlError("create table "+t.Name, err)
		}
	}
	have, err := s.columns(ctx, sess, t.Name)
	if err != nil {
		return err
	}
	if len(have) == 0 {
		return fmt.Errorf("cassandra sink %q: table %s.%s does not exist (create: false)", s.spec.Name, s.keyspace, t.Name)
	}
	part, clust := keyLayout(t)
	for _, f := range t.Columns {
		want, _ := cqlType(f.Type)
		c, ok := have[f.Name]
		if !ok {
			if !s.spec.Create {
				return fmt.Errorf("cassandra sink %q: table %s.%s has no column %q (create: false)", s.spec.Name, s.keyspace, t.Name, f.Name)
			}
			if slices.Contains(t.Key, f.Name) {
				return fmt.Errorf("cassandra sink %q: table %s.%s: key column %q cannot be added to an existing table: %w",
					s.spec.Name, s.keyspace, t.Name, f.Name, sinks.ErrPermanent)
			}
			alter := fmt.Sprintf("ALTER TABLE %s.%s ADD %s %s", quote(s.keyspace), quote(t.Name), quote(f.Name), want)
			if err := sess.Query(alter).WithContext(ctx).Exec(); err != nil && !isAlreadyThere(err) {
				return s.ddlError("add column "+f.Name+" to "+t.Name, err)
			}
			s.log.Info("added column", "table", t.Name, "column", f.Name, "type", want)
			continue
		}
		if c.typ != want {
			return fmt.Errorf("cassandra sink %q: column %s.%s.%s is %s, the pipeline says %s: %w",
				s.spec.Name, s.keyspace, t.Name, f.Name, c.typ, want, sinks.ErrPermanent)
		}
		wantKind := "regular"
		if slices.Contains(part, f.Name) {
			wantKind = "partition_key"
		} else if slices.Contains(clust, f.Name) {
			wantKind = "clustering"
		}
		if c.kind != wantKind {
			return fmt.Errorf("cassandra sink %q: column %s.%s.%s is %s, the pipeline's key needs %s: %w",
				s.spec.Name, s.keyspace, t.Name, f.Name, c.kind, wantKind, sinks.ErrPermanent)
		}
	}
	return nil
}

func (s *Sink) createKeyspace(ctx context.Context, sess *gocql.Session) error {
	s.mu.Lock()
	ready := s.ksReady
	s.mu.Unlock()
	if ready {
		return nil
	}
	// SimpleStrategy with one replica suits a laptop or a test node; a
	// production keyspace is made by its operator, and IF NOT EXISTS leaves
	// it as it is.
	q := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", quote(s.keyspace))
	if err := sess.Query(q).WithContext(ctx).Exec(); err != nil {
		return s.ddlError("create keyspace "+s.keyspace, err)
	}
	s.mu.Lock()
	s.ksReady = true
	s.mu.Unlock()
	return nil
}

// columns reads the columns of ks.table; empty when the table is missing.
func (s *Sink) columns(ctx context.Context, sess *gocql.Session, table string) (map[string]column, error) {
	iter := sess.Query(`SELECT column_name, type, kind FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?`,
		s.keyspace, table).WithContext(ctx).Iter()
	out := make(map[string]column)
	var name string
	var c column
	for iter.Scan(&name, &c.typ, &c.kind) {
		out[name] = c
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra sink %q: read columns of %s.%s: %w", s.spec.Name, s.keyspace, table, err)
	}
	return out, nil
}

// ddlError wraps a failed schema statement; a refused statement (bad name,
// bad option) is permanent, the rest transient.
func (s *Sink) ddlError(what string, err error) error {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeInvalid, gocql.ErrCodeSyntax, gocql.ErrCodeConfig:
			return fmt.Errorf("cassandra sink %q: %s: %w: %w", s.spec.Name, what, err, sinks.ErrPermanent)
		}
	}
	return fmt.Errorf("cassandra sink %q: %s: %w", s.spec.Name, what, err)
}

// isAlreadyThere tells whether an ALTER TABLE ADD failed because another
// process added the column first.
func isAlreadyThere(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "already exist") || strings.Contains(msg, "conflicts with an existing column")
}
