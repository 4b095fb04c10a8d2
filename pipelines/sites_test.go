package pipelines_test

import (
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// sourced is fields whose topic m pulls from site eu (lines 12-13); lines
// added to the source start at line 14, at its indentation.
var sourced = with(fields,
	"    sources:",
	"      - {site: eu, url: nats://eu.example:4222}",
)

func TestSources(t *testing.T) {
	src := strings.Join(with(sourced,
		"      - site: us",
		"        url: tls://us-1:4222, tls://us-2:4222",
		"        topic: metrics",
		"        prefix: US",
		"        auth: {user: agg, password: pw}",
		"        tls: {ca: ca.pem}",
		"views:",
		"  - name: v",
		"    from: m",
		"    where: _site != 'test'",
		"    group_by: [_site]",
		"    window: {type: tumbling, size: 1m}",
		"    aggregates: {events: count()}",
	), "\n")
	p, err := pipelines.Parse("p.yaml", []byte(src), nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	if p.SiteName() != "p" {
		t.Errorf("site %q, want the pipeline name", p.SiteName())
	}
	m := p.TopicByName("m")
	last := m.Schema[len(m.Schema)-1]
	if last != (event.Field{Name: pipelines.SiteField, Type: event.TypeString, Required: true}) || !pipelines.IsSiteField(last) {
		t.Errorf("last field %+v, want the site field", last)
	}
	eu, us := m.Sources[0], m.Sources[1]
	if eu.Prefix != "LF" || eu.SourceTopicName("m") != "m" || eu.Consumer("m") != "mirror.eu.m" {
		t.Errorf("eu defaults: %+v", eu)
	}
	if us.SourceTopicName("m") != "metrics" || us.Prefix != "US" || us.Auth.User != "agg" || us.TLS.CA != "ca.pem" {
		t.Errorf("us: %+v", us)
	}
	if got := pipelines.ViewSchema(&p.Views[0], m); got[2].Name != pipelines.SiteField {
		t.Errorf("view schema %+v: want _site as its group-by column", got)
	}
	// A topic without sources has no site field.
	q, err := pipelines.Parse("q.yaml", []byte(strings.Join(fields, "\n")), nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	if q.Topics[0].Schema.Index(pipelines.SiteField) >= 0 {
		t.Error("a topic without sources got the site field")
	}
}

func TestSourceErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{name: "site is this one", src: with(sourced, "      - {site: p, url: nats://h:4222}"),
			want: []string{`p.yaml:14:16: topics[0].sources[1].site: "p" is this site's own name (the pipeline's name); a source is another site`}},
		{name: "duplicate site", src: with(sourced, "      - {site: eu, url: nats://h:4222}"),
			want: []string{`p.yaml:14:16: topics[0].sources[1].site: duplicate source site "eu" for topic "m" (first on line 13)`}},
		{name: "missing keys", src: with(sourced, "      - {topic: m}"),
			want: []string{"p.yaml:14:9: topics[0].sources[1].site: is required", "p.yaml:14:9: topics[0].sources[1].url: is required"}},
		{name: "bad values", src: with(sourced,
			"      - site: Bad.Site",
			"        url: http://h:80",
			"        topic: Metrics",
			"        prefix: '1x'",
			"        auth: {user: u}",
			"        tls: {key: k.pem}"),
			want: []string{
				`p.yaml:14:15: topics[0].sources[1].site: must be 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter; got "Bad.Site"`,
				`p.yaml:15:14: topics[0].sources[1].url: invalid server URL "http://h:80": want nats://host:port (or tls://, ws://, wss://), comma-separated`,
				`p.yaml:16:16: topics[0].sources[1].topic: must be 1 to 63 lowercase letters, digits or '_', starting with a letter; got "Metrics"`,
				`p.yaml:17:17: topics[0].sources[1].prefix: must be 1 to 32 letters, digits or '_', starting with a letter; got "1x"`,
				`p.yaml:18:15: topics[0].sources[1].auth.password: is required with user`,
				`p.yaml:19:14: topics[0].sources[1].tls.cert: is required with key`,
			}},
		{name: "site field on a topic without sources", src: with(view[:len(view)-1],
			"    group_by: [_site]",
			"    aggregates: {events: count()}"),
			want: []string{`p.yaml:16:16: views[0].group_by[0]: topic "m" has no field "_site": only a topic with sources has it`}},
		{name: "a file cannot declare the site field", src: with(mini[:4], "    schema: {ts: timestamp, _site: string}"),
			want: []string{`p.yaml:5:29: topics[0].schema._site: field name must be 1 to 63 letters, digits or '_', starting with a letter`}},
		{name: "a site named like its source", src: with(sourced[:2], append([]string{"site: eu"}, sourced[2:]...)...),
			want: []string{`p.yaml:14:16: topics[0].sources[0].site: "eu" is this site's own name (site); a source is another site`}},
		{name: "bad site", src: with(mini, "site: Eu"),
			want: []string{`p.yaml:6:7: site: must be 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter; got "Eu"`}},
	})
}
