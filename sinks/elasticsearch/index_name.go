package elasticsearch

import (
	"fmt"
	"strings"
	"time"
)

// indexPattern is a parsed index name pattern such as "{name}-{yyyy.MM.dd}":
// literal text, the table's name, and dates of the row's event time in UTC.
type indexPattern struct {
	segs    []segment
	hasDate bool
}

type segment struct {
	lit    string // literal text, when neither name nor date
	name   bool   // the topic or view name
	layout string // a Go time layout, for a date
}

// parseIndexPattern parses pattern; "" means "{name}". Dates use the
// Joda/Kibana letters users know from Elasticsearch: yyyy, MM, dd, HH,
// separated by '.', '-' or '_'.
func parseIndexPattern(pattern string) (indexPattern, error) {
	if pattern == "" {
		pattern = "{name}"
	}
	var p indexPattern
	rest := pattern
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			p.segs = append(p.segs, segment{lit: rest})
			break
		}
		if open > 0 {
			p.segs = append(p.segs, segment{lit: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return indexPattern{}, fmt.Errorf("index pattern %q: unclosed '{'", pattern)
		}
		tok := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		if tok == "name" {
			p.segs = append(p.segs, segment{name: true})
			continue
		}
		layout, err := dateLayout(tok)
		if err != nil {
			return indexPattern{}, fmt.Errorf("index pattern %q: {%s}: %w", pattern, tok, err)
		}
		p.segs = append(p.segs, segment{layout: layout})
		p.hasDate = true
	}
	for _, s := range p.segs {
		if s.lit != "" && strings.ContainsAny(s.lit, "}") {
			return indexPattern{}, fmt.Errorf("index pattern %q: unmatched '}'", pattern)
		}
	}
	return p, nil
}

// dateLayout turns "yyyy.MM.dd" into the Go layout "2006.01.02".
func dateLayout(tok string) (string, error) {
	var b strings.Builder
	for tok != "" {
		switch {
		case strings.HasPrefix(tok, "yyyy"):
			b.WriteString("2006")
			tok = tok[4:]
		case strings.HasPrefix(tok, "MM"):
			b.WriteString("01")
			tok = tok[2:]
		case strings.HasPrefix(tok, "dd"):
			b.WriteString("02")
			tok = tok[2:]
		case strings.HasPrefix(tok, "HH"):
			b.WriteString("15")
			tok = tok[2:]
		case strings.ContainsRune(".-_", rune(tok[0])):
			b.WriteByte(tok[0])
			tok = tok[1:]
		default:
			return "", fmt.Errorf("unknown date part at %q (use yyyy, MM, dd, HH)", tok)
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("empty")
	}
	return b.String(), nil
}

// index is the index a row of table name with event time us (UTC
// microseconds) goes to.
func (p indexPattern) index(name string, us int64) string {
	var t time.Time
	if p.hasDate {
		t = time.UnixMicro(us).UTC()
	}
	var b strings.Builder
	for _, s := range p.segs {
		switch {
		case s.name:
			b.WriteString(name)
		case s.layout != "":
			b.WriteString(t.Format(s.layout))
		default:
			b.WriteString(s.lit)
		}
	}
	return b.String()
}

// wildcard is the index pattern matching every index of table name: the
// dates replaced by '*'. Without a date it is the one index's exact name,
// so the template of one table never matches another table's index
// ("metrics" must not catch "metrics_by_host").
func (p indexPattern) wildcard(name string) string {
	var b strings.Builder
	for _, s := range p.segs {
		switch {
		case s.name:
			b.WriteString(name)
		case s.layout != "":
			b.WriteByte('*')
		default:
			b.WriteString(s.lit)
		}
	}
	return b.String()
}

// validIndexName reports why Elasticsearch would refuse name as an index
// name, or nil.
func validIndexName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("index name %q is not allowed", name)
	case len(name) > 255:
		return fmt.Errorf("index name %q is longer than 255 bytes", name)
	case strings.ToLower(name) != name:
		return fmt.Errorf("index name %q must be lowercase", name)
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return fmt.Errorf("index name %q contains one of \\ / * ? \" < > | space , # :", name)
	case strings.ContainsAny(name[:1], "-_+"):
		return fmt.Errorf("index name %q must not start with -, _ or +", name)
	}
	return nil
}

// templateName names the index template of table name: its indices'
// pattern without the date parts ("metrics" for "{name}" and for
// "{name}-{yyyy.MM.dd}", "archive-metrics" for "archive-{name}-{yyyy}"), so
// sinks writing one table under different patterns keep apart templates.
func (p indexPattern) templateName(name string) string {
	var b strings.Builder
	for _, s := range p.segs {
		switch {
		case s.name:
			b.WriteString(name)
		case s.layout == "":
			b.WriteString(s.lit)
		}
	}
	return strings.Trim(b.String(), "-_.")
}
