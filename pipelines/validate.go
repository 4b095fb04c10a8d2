package pipelines

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/expr"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Name rules. Topic, view and sink names become stream, subject, file, table
// and index names, so they are lowercase and free of separators; the JSON
// Schema states the same patterns.
const (
	namePattern         = `^[a-z][a-z0-9_]{0,62}$`
	nameRule            = "1 to 63 lowercase letters, digits or '_', starting with a letter"
	pipelineNamePattern = `^[a-z][a-z0-9_-]{0,62}$`
	pipelineNameRule    = "1 to 63 lowercase letters, digits, '_' or '-', starting with a letter"
	// Field names are column names in the lake and in sinks. A leading '_' is
	// kept for the columns Lambdaflow adds (_id, _offset, ...).
	fieldNamePattern = `^[A-Za-z][A-Za-z0-9_]{0,62}$`
	fieldNameRule    = "1 to 63 letters, digits or '_', starting with a letter"
	prefixPattern    = `^[A-Za-z][A-Za-z0-9_]{0,31}$`
	prefixRule       = "1 to 32 letters, digits or '_', starting with a letter"
	// A sink's dead-letter topic is <name>_dlq, which must itself be a valid
	// topic name.
	sinkNamePattern = `^[a-z][a-z0-9_]{0,58}$`
	sinkNameRule    = "1 to 59 lowercase letters, digits or '_', starting with a letter"
)

var (
	nameRe         = regexp.MustCompile(namePattern)
	pipelineNameRe = regexp.MustCompile(pipelineNamePattern)
	fieldNameRe    = regexp.MustCompile(fieldNamePattern)
	prefixRe       = regexp.MustCompile(prefixPattern)
	sinkNameRe     = regexp.MustCompile(sinkNamePattern)
)

// reservedColumns are the columns every view row has besides its group-by
// fields and aggregates, in the query API and in sinks.
var reservedColumns = []string{viewrow.ColWindowStart, viewrow.ColWindowEnd, viewrow.ColFinal, viewrow.ColLayer}

// validator collects the problems of one decoded pipeline.
type validator struct {
	file  string
	pos   positions
	sinks SinkTypes
	errs  Errors
}

// validate checks a decoded pipeline: every field and every cross-reference.
// Each check is one method; to add one, write it and list it here. Checks
// report through errorf, which finds the position of a path, and stay quiet
// about values that already failed to decode.
func validate(p *Pipeline, pos positions, sinks SinkTypes) Errors {
	v := &validator{file: p.File, pos: pos, sinks: sinks}
	checks := []func(*validator, *Pipeline){
		(*validator).checkTags,
		(*validator).checkHeader,
		(*validator).checkHTTP,
		(*validator).checkBroker,
		(*validator).checkIngest,
		(*validator).checkAuth,
		(*validator).checkKafka,
		(*validator).checkTopics,
		(*validator).checkSources,
		(*validator).checkViews,
		(*validator).checkLake,
		(*validator).checkSinks,
	}
	for _, check := range checks {
		check(v, p)
	}
	return v.errs
}

// errorf reports a problem with the value at path. A path that is not in the
// file (a missing key) is reported at its nearest ancestor that is.
func (v *validator) errorf(path, format string, args ...any) {
	for q := path; ; q = parentPath(q) {
		if v.pos.bad[q] {
			return
		}
		if q == "" {
			break
		}
	}
	v.report(v.posOf(path), path, format, args...)
}

// keyErrorf reports a problem with the key at path, such as a bad column
// name; it is independent of whether the value decoded.
func (v *validator) keyErrorf(path, format string, args ...any) {
	p, ok := v.pos.key[path]
	if !ok {
		p = v.posOf(path)
	}
	v.report(p, path, format, args...)
}

func (v *validator) report(p Pos, path, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: p.Line, Col: p.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) posOf(path string) Pos {
	for q := path; ; q = parentPath(q) {
		if p, ok := v.pos.val[q]; ok {
			return p
		}
		if q == "" {
			return Pos{Line: 1, Col: 1}
		}
	}
}

// present reports whether path was written in the file.
func (v *validator) present(path string) bool {
	_, ok := v.pos.val[path]
	return ok
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.errorf(path, "must be positive, got %s", d)
	}
}

// atLeastDuration reports a duration shorter than lowest (a zero or
// sub-second timeout or schedule is a mistake, never a wish).
func (v *validator) atLeastDuration(path string, d Duration, lowest time.Duration) {
	if d.D() < lowest {
		v.errorf(path, "must be at least %s, got %s", Duration(lowest), d)
	}
}

func (v *validator) notNegative(path string, d Duration) {
	if d < 0 {
		v.errorf(path, "must not be negative, got %s", d)
	}
}

func (v *validator) atLeast(path string, n, lowest int64) {
	if n < lowest {
		if lowest == 1 {
			v.errorf(path, "must be positive, got %d", n)
		} else {
			v.errorf(path, "must be at least %d, got %d", lowest, n)
		}
	}
}

func (v *validator) name(path, name string, re *regexp.Regexp, rule string) {
	if name != "" && !re.MatchString(name) {
		v.errorf(path, "must be %s; got %s", rule, quote(name))
	}
}

// notBlank reports list items that are empty strings.
func (v *validator) notBlank(path string, items []string) {
	for i, s := range items {
		if strings.TrimSpace(s) == "" {
			v.errorf(indexPath(path, i), "must not be empty")
		}
	}
}

// checkTags applies the `required`, `enum` and `pattern` tags to every
// struct of the pipeline, sinks' own configurations included.
func (v *validator) checkTags(p *Pipeline) {
	v.tags(reflect.ValueOf(p).Elem(), "", "")
}

// tags checks the tags of struct s at path. sink is the type of the sink
// whose configuration s is, "" for the file's own structs.
func (v *validator) tags(s reflect.Value, path, sink string) {
	for _, f := range fieldsOf(s.Type()) {
		fv, fp := s.Field(f.index), keyPath(path, f.name)
		empty := fv.IsZero() || fv.Kind() == reflect.Slice && fv.Len() == 0
		if f.required && empty {
			switch {
			case sink != "":
				v.errorf(fp, "is required for %s sinks", sink)
			case !v.present(fp):
				v.errorf(fp, "is required")
			case fv.Kind() == reflect.String || fv.Kind() == reflect.Slice:
				v.errorf(fp, "must not be empty")
			}
			continue
		}
		if slices.Equal(f.enum, []string{sinkTypesEnum}) && len(v.sinks) == 0 {
			v.errorf(fp, "unknown sink type %s: no sink types are available to this program", quote(fv.String()))
			continue
		}
		if enum := v.enum(f); len(enum) > 0 {
			var got string
			switch fv.Kind() {
			case reflect.String:
				got = fv.String()
			default:
				got = strconv.FormatInt(fv.Int(), 10)
			}
			if !slices.Contains(enum, got) {
				shown := got
				if fv.Kind() == reflect.String {
					shown = quote(got)
				}
				v.errorf(fp, "must be one of %s; got %s%s", strings.Join(enum, ", "), shown, didYouMean(got, enum))
			}
		}
		if f.pattern != "" && fv.Kind() == reflect.String && fv.String() != "" && !regexp.MustCompile(f.pattern).MatchString(fv.String()) {
			v.errorf(fp, "must be %s; got %s", f.rule, quote(fv.String()))
		}
		switch {
		case fv.Kind() == reflect.Struct && fv.Type() != posType:
			v.tags(fv, fp, sink)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct &&
			fv.Type() != schemaType && fv.Type() != aggregatesType:
			for i := range fv.Len() {
				v.tags(fv.Index(i), indexPath(fp, i), sink)
			}
		}
	}
	if s.Type() == sinkType {
		if cfg := s.FieldByName("Config"); !cfg.IsNil() {
			v.tags(cfg.Elem().Elem(), path, s.FieldByName("Type").String())
		}
	}
}

// enum returns the values field f may take, if they are limited.
func (v *validator) enum(f field) []string {
	if slices.Equal(f.enum, []string{sinkTypesEnum}) {
		return v.sinks.Names()
	}
	return f.enum
}

func (v *validator) checkHeader(p *Pipeline) {
	if p.Version != 1 && (p.Version != 0 || v.present("version")) {
		v.errorf("version", "must be 1, got %d", p.Version)
	}
	v.name("name", p.Name, pipelineNameRe, pipelineNameRule)
	if p.DataDir == "" {
		v.errorf("data_dir", "must not be empty")
	}
	v.atLeastDuration("shutdown_timeout", p.ShutdownTimeout, time.Second)
}

func (v *validator) checkHTTP(p *Pipeline) {
	h := p.HTTP
	v.hostPort("http.listen", h.Listen)
	v.atLeastDuration("http.read_header_timeout", h.ReadHeaderTimeout, time.Second)
	v.atLeastDuration("http.read_timeout", h.ReadTimeout, time.Second)
	v.atLeastDuration("http.write_timeout", h.WriteTimeout, time.Second)
	v.atLeastDuration("http.idle_timeout", h.IdleTimeout, time.Second)
	if h.ReadTimeout.D() >= time.Second && h.ReadHeaderTimeout > h.ReadTimeout {
		if v.present("http.read_header_timeout") {
			v.errorf("http.read_header_timeout", "must not exceed http.read_timeout (%s), got %s", h.ReadTimeout, h.ReadHeaderTimeout)
		} else {
			v.errorf("http.read_timeout", "must be at least http.read_header_timeout (%s), got %s", h.ReadHeaderTimeout, h.ReadTimeout)
		}
	}
	v.atLeast("http.max_connections", int64(h.MaxConnections), 1)
}

// hostPort checks a listen or contact address.
func (v *validator) hostPort(path, s string) {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		v.errorf(path, "must be host:port, e.g. 127.0.0.1:8080; got %s", quote(s))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf(path, "port must be a number from 0 to 65535; got %s", quote(port))
	}
}

func (v *validator) checkBroker(p *Pipeline) {
	b := p.Broker
	if b.URL != "" {
		v.natsURLs("broker.url", b.URL)
		for _, key := range []string{"listen", "sync", "cluster"} {
			if v.present("broker." + key) {
				v.errorf("broker."+key, "only applies to the embedded server (broker.url is set)")
			}
		}
	} else {
		for _, key := range []string{"creds", "user", "password", "token", "tls"} {
			if v.present("broker." + key) {
				v.errorf("broker."+key, "only applies to an external cluster (broker.url is empty)")
			}
		}
	}
	if b.Listen != "" {
		v.hostPort("broker.listen", b.Listen)
	}
	v.checkCluster(b.Cluster)
	v.both("broker", "user", b.User, "password", b.Password)
	v.both("broker.tls", "cert", b.TLS.Cert, "key", b.TLS.Key)
	v.name("broker.prefix", b.Prefix, prefixRe, prefixRule)
	if b.Prefix == "" {
		v.errorf("broker.prefix", "must not be empty")
	}
}

// natsURLs checks a comma-separated list of NATS server URLs.
func (v *validator) natsURLs(path, urls string) {
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimSpace(u)
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) {
			v.errorf(path, "invalid server URL %s: want nats://host:port (or tls://, ws://, wss://), comma-separated", quote(u))
		}
	}
}

// both reports either of two keys that need each other (user and
// password, a certificate and its key) set without the other.
func (v *validator) both(path, a, av, b, bv string) {
	if av != "" && bv == "" {
		v.errorf(keyPath(path, b), "is required with %s", a)
	}
	if bv != "" && av == "" {
		v.errorf(keyPath(path, a), "is required with %s", b)
	}
}

func (v *validator) checkCluster(c Cluster) {
	if c.Listen == "" {
		for _, key := range []string{"routes", "node"} {
			if v.present("broker.cluster." + key) {
				v.errorf("broker.cluster."+key, "needs broker.cluster.listen")
			}
		}
		return
	}
	v.hostPort("broker.cluster.listen", c.Listen)
	if len(c.Routes) == 0 {
		v.errorf("broker.cluster.routes", "list the other nodes, nats-route://host:port")
	}
	for i, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" || u.Port() == "" || !slices.Contains([]string{"nats-route", "nats"}, u.Scheme) {
			v.errorf(indexPath("broker.cluster.routes", i), "invalid route %s: want nats-route://host:port", quote(r))
		}
	}
	if c.Name == "" {
		v.errorf("broker.cluster.name", "must not be empty")
	}
	v.name("broker.cluster.name", c.Name, clusterNameRe, clusterNameRule)
	v.name("broker.cluster.node", c.Node, clusterNameRe, clusterNameRule)
}

// clusterNameRe is what NATS takes for cluster and server names without
// quoting (no spaces, dots or wildcards).
var clusterNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

const clusterNameRule = "1 to 64 letters, digits, '_' or '-'"

func (v *validator) checkIngest(p *Pipeline) {
	in := p.Ingest
	v.atLeast("ingest.max_body_bytes", in.MaxBodyBytes, 1)
	v.atLeast("ingest.max_in_flight", int64(in.MaxInFlight), 1)
	v.positive("ingest.dedup_window", in.DedupWindow)
	v.atLeast("ingest.dedup_max_ids", int64(in.DedupMaxIDs), 1)
	v.notNegative("ingest.linger", in.Linger)
	v.atLeast("ingest.max_batch", int64(in.MaxBatch), 1)
}

func (v *validator) checkAuth(p *Pipeline) {
	v.notBlank("auth.read_tokens", p.Auth.ReadTokens)
	v.notBlank("auth.admin_tokens", p.Auth.AdminTokens)
	for i, o := range p.Auth.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			v.errorf(indexPath("auth.allowed_origins", i), "must be an origin, scheme://host[:port] (e.g. https://dashboards.example.com); got %s", quote(o))
		}
	}
}

func (v *validator) checkKafka(p *Pipeline) {
	k := p.Kafka
	if k.Listen == "" {
		for _, key := range []string{"advertised", "tls", "node_id"} {
			if v.present("kafka." + key) {
				v.errorf("kafka."+key, "has no effect without kafka.listen")
			}
		}
		return
	}
	v.hostPort("kafka.listen", k.Listen)
	if k.Advertised != "" {
		v.hostPort("kafka.advertised", k.Advertised)
		if host, port, err := net.SplitHostPort(k.Advertised); err == nil && (host == "" || port == "0") {
			v.errorf("kafka.advertised", "must name a host and a port clients can reach; got %s", quote(k.Advertised))
		}
	}
	if k.Listen == p.HTTP.Listen && !strings.HasSuffix(k.Listen, ":0") {
		v.errorf("kafka.listen", "is the same address as http.listen")
	}
	v.atLeast("kafka.node_id", int64(k.NodeID), 0)
	v.both("kafka.tls", "cert", k.TLS.Cert, "key", k.TLS.Key)
	if k.TLS.ClientCA != "" && k.TLS.Cert == "" {
		v.errorf("kafka.tls.cert", "is required with client_ca")
	}
	v.atLeast("kafka.max_request_bytes", int64(k.MaxRequestBytes), 1024)
	v.atLeast("kafka.max_fetch_bytes", int64(k.MaxFetchBytes), 1024)
	v.atLeast("kafka.max_connections", int64(k.MaxConnections), 1)
}

func (v *validator) checkTopics(p *Pipeline) {
	first := map[string]string{} // name -> path of its first use
	for i := range p.Topics {
		t := &p.Topics[i]
		path := indexPath("topics", i)
		v.name(path+".name", t.Name, nameRe, nameRule)
		if prev, dup := first[t.Name]; dup && t.Name != "" {
			v.errorf(path+".name", "duplicate topic name %s (first on line %d)", quote(t.Name), v.posOf(prev).Line)
		} else if t.Name != "" {
			first[t.Name] = path + ".name"
		}
		if t.Partitions < 1 || t.Partitions > 1024 {
			v.errorf(path+".partitions", "must be between 1 and 1024, got %d", t.Partitions)
		}
		v.positive(path+".retention", t.Retention)
		v.checkSchema(path+".schema", t.Schema)
		if t.Key != "" && t.Schema.Index(t.Key) < 0 {
			v.errorf(path+".key", "unknown field %s%s", quote(t.Key), didYouMean(t.Key, fieldNames(t.Schema)))
		}
		if t.Time != "" {
			if j := t.Schema.Index(t.Time); j < 0 {
				v.errorf(path+".time", "unknown field %s%s", quote(t.Time), didYouMean(t.Time, fieldNames(t.Schema)))
			} else if ft := t.Schema[j].Type; ft != 0 && ft != event.TypeTimestamp {
				// A timestamp field takes epoch numbers as well as RFC 3339,
				// so events that carry millis need no other type.
				v.errorf(path+".time", "field %s is %s; the time field must be a timestamp (it accepts RFC 3339 strings and epoch numbers in time_unit)", quote(t.Time), ft)
			}
		}
		switch t.TimeUnit {
		case "", "s", "ms", "us":
		default:
			v.errorf(path+".time_unit", "must be s, ms or us (or unset: milliseconds, refusing ones before 1973); got %s%s", quote(t.TimeUnit), didYouMean(t.TimeUnit, []string{"s", "ms", "us"}))
		}
		v.atLeastDuration(path+".max_future", t.MaxFuture, time.Second)
		if t.Lake.Retention != 0 {
			v.atLeastDuration(path+".lake.retention", t.Lake.Retention, time.Hour)
		}
		v.notBlank(path+".write_tokens", t.WriteTokens)
		v.notBlank(path+".read_tokens", t.ReadTokens)
	}
}

func (v *validator) checkSchema(path string, s event.Schema) {
	seen := map[string]string{} // lower-case name -> name
	for _, f := range s {
		fp := keyPath(path, f.Name)
		if IsSiteField(f) {
			continue
		}
		if !fieldNameRe.MatchString(f.Name) {
			v.keyErrorf(fp, "field name must be %s", fieldNameRule)
		}
		if prev, dup := seen[strings.ToLower(f.Name)]; dup {
			v.keyErrorf(fp, "same name as %s apart from case; SQL column names ignore case", quote(prev))
		} else {
			seen[strings.ToLower(f.Name)] = f.Name
		}
	}
}

func fieldNames(s event.Schema) []string {
	out := make([]string, len(s))
	for i, f := range s {
		out[i] = f.Name
	}
	return out
}

func (v *validator) checkViews(p *Pipeline) {
	topics := map[string]int{}
	for i, t := range p.Topics {
		if _, dup := topics[t.Name]; !dup {
			topics[t.Name] = i
		}
	}
	first := map[string]string{}
	for i := range p.Views {
		w := &p.Views[i]
		path := indexPath("views", i)
		v.name(path+".name", w.Name, nameRe, nameRule)
		if j, ok := topics[w.Name]; ok && w.Name != "" {
			v.errorf(path+".name", "%s is already a topic name (line %d)", quote(w.Name), v.posOf(indexPath("topics", j)+".name").Line)
		} else if prev, dup := first[w.Name]; dup && w.Name != "" {
			v.errorf(path+".name", "duplicate view name %s (first on line %d)", quote(w.Name), v.posOf(prev).Line)
		} else if w.Name != "" {
			first[w.Name] = path + ".name"
		}
		var topic *Topic
		if j, ok := topics[w.From]; ok {
			topic = &p.Topics[j]
		} else if w.From != "" {
			if slices.ContainsFunc(p.Views, func(o View) bool { return o.Name == w.From }) {
				v.errorf(path+".from", "%s is a view; a view reads a topic", quote(w.From))
			} else {
				v.errorf(path+".from", "unknown topic %s%s", quote(w.From), didYouMean(w.From, topicNames(p)))
			}
		}
		v.checkView(path, w, topic)
	}
}

func topicNames(p *Pipeline) []string {
	out := make([]string, len(p.Topics))
	for i, t := range p.Topics {
		out[i] = t.Name
	}
	return out
}

// checkView checks one view; topic is the topic it reads, nil when from does
// not name one.
func (v *validator) checkView(path string, w *View, topic *Topic) {
	v.checkWhere(path+".where", w, topic)
	v.checkGroupBy(path+".group_by", w, topic)
	v.checkWindow(path+".window", w.Window)
	v.checkAggregates(path+".aggregates", w, topic)
	if w.Batch.Schedule != "" {
		switch sched, err := w.Batch.Cron(); {
		case err != nil:
			v.errorf(path+".batch.schedule", "invalid cron schedule: %v", err)
		case sched == nil:
			v.errorf(path+".batch.schedule", "must not be blank; leave schedule out to recompute only on request")
		case strings.HasPrefix(w.Batch.Schedule, "@every "):
			// The cron library rounds a shorter interval up to a second
			// without a word; a zero or sub-second interval is a mistake.
			every := strings.TrimSpace(strings.TrimPrefix(w.Batch.Schedule, "@every "))
			if d, err := time.ParseDuration(every); err == nil && d < time.Second {
				v.errorf(path+".batch.schedule", "@every needs an interval of at least 1s, got %s", every)
			}
		}
	}
	v.positive(path+".retention", w.Retention)
	if d := w.Emit.Interval; d < 0 || (d > 0 && d.D() < MinEmitInterval) {
		v.errorf(path+".emit.interval", "must be at least %s (or 0: no open windows in the view's topic), got %s", Duration(MinEmitInterval), d)
	}
}

// checkWhere parses and type-checks a view's filter expression against its
// topic's schema (topic is nil when from is unknown: nothing to check against).
func (v *validator) checkWhere(path string, w *View, topic *Topic) {
	if !v.present(path) {
		return
	}
	if strings.TrimSpace(w.Where) == "" {
		v.errorf(path, "must not be blank; leave where out to keep every event")
		return
	}
	if topic == nil {
		return
	}
	if err := expr.CheckWhere(w.Where, topic.Schema); err != nil {
		v.errorf(path, "%v", err)
	}
}

func (v *validator) checkGroupBy(path string, w *View, topic *Topic) {
	seen := map[string]bool{}
	for i, g := range w.GroupBy {
		gp := indexPath(path, i)
		switch {
		case g == "":
			v.errorf(gp, "must not be empty")
		case slices.Contains(reservedColumns, g):
			v.errorf(gp, "%s is a reserved column (%s)", quote(g), strings.Join(reservedColumns, ", "))
		case seen[g]:
			v.errorf(gp, "duplicate field %s", quote(g))
		case topic != nil && g == SiteField && topic.Schema.Index(g) < 0:
			v.errorf(gp, "topic %s has no field %s: only a topic with sources has it", quote(topic.Name), quote(g))
		case topic != nil && topic.Schema.Index(g) < 0:
			v.errorf(gp, "unknown field %s in topic %s%s", quote(g), quote(topic.Name), didYouMean(g, fieldNames(topic.Schema)))
		}
		seen[g] = true
	}
}

// checkWindow checks the window of a view. A hopping window's size need not be
// a multiple of its slide: each event simply falls into every window that
// covers it, ceil(size/slide) or floor(size/slide) of them.
func (v *validator) checkWindow(path string, w Window) {
	size, slide, gap := path+".size", path+".slide", path+".gap"
	need := func(p string, d Duration) {
		if d == 0 && !v.present(p) {
			v.errorf(p, "is required for %s windows", w.Type)
		} else {
			v.positive(p, d)
		}
	}
	refuse := func(p string, d Duration, why string) {
		if d != 0 || v.present(p) {
			v.errorf(p, "%s windows have no %s (%s)", w.Type, p[strings.LastIndexByte(p, '.')+1:], why)
		}
	}
	switch w.Type {
	case "tumbling":
		need(size, w.Size)
		refuse(slide, w.Slide, "use type: hopping")
		refuse(gap, w.Gap, "use type: session")
	case "hopping":
		need(size, w.Size)
		need(slide, w.Slide)
		if w.Size > 0 && w.Slide > w.Size {
			v.errorf(slide, "must not exceed size (%s), got %s", w.Size, w.Slide)
		}
		refuse(gap, w.Gap, "use type: session")
	case "session":
		need(gap, w.Gap)
		refuse(size, w.Size, "a gap of inactivity closes them")
		refuse(slide, w.Slide, "a gap of inactivity closes them")
	}
	v.notNegative(path+".lateness", w.Lateness)
}

func (v *validator) checkAggregates(path string, w *View, topic *Topic) {
	for _, a := range w.Aggregates {
		ap := keyPath(path, a.Name)
		if !nameRe.MatchString(a.Name) {
			v.keyErrorf(ap, "output name must be %s", nameRule)
		}
		if slices.Contains(reservedColumns, a.Name) {
			v.keyErrorf(ap, "%s is a reserved column (%s)", quote(a.Name), strings.Join(reservedColumns, ", "))
		}
		for _, g := range w.GroupBy {
			if strings.EqualFold(g, a.Name) {
				v.keyErrorf(ap, "collides with group_by field %s", quote(g))
			}
		}
		f, ok := aggregate.Lookup(a.Func)
		if !ok {
			continue // reported by the decoder
		}
		if num, ok := f.NumberArg(); ok && num.Check != nil {
			if msg := num.Check(a.Arg); msg != "" {
				v.errorf(ap, "%s's %s %s, got %g", f.Name, num.Name, msg, a.Arg)
			}
		}
		if topic == nil || a.Field == "" {
			continue
		}
		j := topic.Schema.Index(a.Field)
		if j < 0 {
			v.errorf(ap, "unknown field %s in topic %s%s", quote(a.Field), quote(topic.Name), didYouMean(a.Field, fieldNames(topic.Schema)))
			continue
		}
		ft := topic.Schema[j].Type
		if arg, ok := f.FieldArg(); ok && ft != 0 && !arg.Types.Has(ft) { // 0: unknown type, already reported
			v.errorf(ap, "%s needs %s; %s is %s", f.Name, arg.Types.Desc, quote(a.Field), ft)
		}
	}
}

func (v *validator) checkLake(p *Pipeline) {
	l := p.Lake
	if l.URL != "" {
		u, err := url.Parse(l.URL)
		switch {
		case err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.User != nil:
			v.errorf("lake.url", "must be s3://bucket/prefix; got %s", quote(l.URL))
		case strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") || strings.Contains(u.Path, "//"):
			v.errorf("lake.url", "the prefix must not hold empty or '..' parts; got %s", quote(l.URL))
		}
		if l.Dir != "" {
			v.errorf("lake.dir", "lake.dir and lake.url are exclusive: the lake is in a directory or on object storage")
		}
	}
	if l.Endpoint != "" {
		if u, err := url.Parse(l.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf("lake.endpoint", "must be http://host:port or https://host; got %s", quote(l.Endpoint))
		}
	}
	if (l.AccessKeyID == "") != (l.SecretAccessKey == "") {
		v.errorf("lake.access_key_id", "access_key_id and secret_access_key go together (both empty: the default credentials)")
	}
	if l.URL == "" && (l.Endpoint != "" || l.AccessKeyID != "" || l.PathStyle) {
		v.errorf("lake.url", "endpoint, credentials and path_style are for a lake on object storage: set lake.url")
	}
	if l.Buffer < 1<<20 {
		v.errorf("lake.buffer", "must be at least 1MiB, got %d bytes", l.Buffer)
	}
	v.atLeast("lake.roll.max_rows", int64(l.Roll.MaxRows), 1)
	v.positive("lake.roll.max_age", l.Roll.MaxAge)
	v.atLeast("lake.compact.min_files", int64(l.Compact.MinFiles), 2)
	v.positive("lake.compact.interval", l.Compact.Interval)
}

func (v *validator) checkSinks(p *Pipeline) {
	// Topics and views share the log's namespace with the sinks' dead-letter
	// topics.
	logNames := map[string]string{} // name -> path of its name
	for i, t := range p.Topics {
		if _, dup := logNames[t.Name]; !dup {
			logNames[t.Name] = indexPath("topics", i) + ".name"
		}
	}
	for i, w := range p.Views {
		if _, dup := logNames[w.Name]; !dup {
			logNames[w.Name] = indexPath("views", i) + ".name"
		}
	}
	for i, w := range p.Views {
		pt := w.Name + PartialsSuffix
		if other, ok := logNames[pt]; ok && w.Name != "" {
			v.errorf(indexPath("views", i)+".name", "the view's partials topic %s collides with %s (line %d)", quote(pt), strings.TrimSuffix(other, ".name"), v.posOf(other).Line)
		}
	}
	for i, w := range p.Views {
		if _, dup := logNames[w.Name+PartialsSuffix]; !dup {
			logNames[w.Name+PartialsSuffix] = indexPath("views", i) + ".name"
		}
	}
	targets := topicNames(p)
	for _, w := range p.Views {
		targets = append(targets, w.Name)
	}
	first := map[string]string{}
	for i := range p.Sinks {
		s := &p.Sinks[i]
		path := indexPath("sinks", i)
		v.name(path+".name", s.Name, sinkNameRe, sinkNameRule)
		dlq := s.Name + DeadLetterSuffix
		if other, ok := logNames[dlq]; ok && s.Name != "" {
			v.errorf(path+".name", "the sink's dead-letter topic %s collides with %s (line %d)", quote(dlq), strings.TrimSuffix(other, ".name"), v.posOf(other).Line)
		} else if prev, dup := first[s.Name]; dup && s.Name != "" {
			v.errorf(path+".name", "duplicate sink name %s (first on line %d)", quote(s.Name), v.posOf(prev).Line)
		} else if s.Name != "" {
			first[s.Name] = path + ".name"
		}
		seen := map[string]bool{}
		for j, f := range s.From {
			fp := indexPath(path+".from", j)
			switch {
			case f == "":
				v.errorf(fp, "must not be empty")
			case seen[f]:
				v.errorf(fp, "duplicate %s", quote(f))
			case !slices.Contains(targets, f):
				v.errorf(fp, "unknown topic or view %s%s", quote(f), didYouMean(f, targets))
			}
			seen[f] = true
		}
		if st, ok := v.sinks.Lookup(s.Type); ok && st.Check != nil && s.Config != nil {
			st.Check(s.Config, sinkCheck{v: v, path: path})
		}
		v.atLeast(path+".batch.max_rows", int64(s.Batch.MaxRows), 1)
		v.notNegative(path+".batch.max_wait", s.Batch.MaxWait)
		v.atLeast(path+".batch.max_retries", int64(s.Batch.MaxRetries), 0)
	}
}

// sinkCheck is the SinkCheck of the sink at path.
type sinkCheck struct {
	v    *validator
	path string
}

func (c sinkCheck) Errorf(key, format string, args ...any) {
	c.v.errorf(c.path+"."+key, format, args...)
}

func (c sinkCheck) Present(key string) bool { return c.v.present(c.path + "." + key) }

func (c sinkCheck) HostPort(key, s string) { c.v.hostPort(c.path+"."+key, s) }
