package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Sites read each other's logs: a topic with sources pulls the same topic of
// other sites into its own (package mirror). For that a site advertises what
// its topics are, and another site opens a read-only view of its log.

// topicsBucket holds one record per user topic: what other sites need to
// read it (docs/log-format.md, "Topic records").
const topicsBucket = "topics"

// ErrNoTopicRecord is returned (wrapped) by Remote.Describe when the other
// site does not advertise the topic: it has no such topic, or it has not
// started since it got one.
var ErrNoTopicRecord = errors.New("broker: the site advertises no such topic")

// TopicRecord is what a site advertises about one of its topics.
type TopicRecord struct {
	// Site is the advertising pipeline's site (pipelines.Pipeline.SiteName).
	Site       string `json:"site"`
	Topic      string `json:"topic"`
	Partitions int    `json:"partitions"`
	// Schema is the topic's schema, _site included when the topic has
	// sources of its own.
	Schema []FieldRecord `json:"schema"`
}

// FieldRecord is one field of a TopicRecord's schema.
type FieldRecord struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
}

// EventSchema returns the record's schema; a field of an unknown type has
// type 0.
func (r TopicRecord) EventSchema() event.Schema {
	out := make(event.Schema, len(r.Schema))
	for i, f := range r.Schema {
		t, _ := event.ParseFieldType(f.Type)
		out[i] = event.Field{Name: f.Name, Type: t, Required: f.Required}
	}
	return out
}

func topicRecord(site string, t *pipelines.Topic) TopicRecord {
	r := TopicRecord{Site: site, Topic: t.Name, Partitions: max(t.Partitions, 1), Schema: make([]FieldRecord, len(t.Schema))}
	for i, f := range t.Schema {
		r.Schema[i] = FieldRecord{Name: f.Name, Type: f.Type.String(), Required: f.Required}
	}
	return r
}

// advertise writes the record of every user topic, so that other sites can
// read them.
func (b *Broker) advertise(ctx context.Context) error {
	kv, err := b.keyValue(ctx, topicsBucket)
	if err != nil {
		return err
	}
	site := b.p.SiteName()
	for i := range b.p.Topics {
		t := &b.p.Topics[i]
		v, _ := json.Marshal(topicRecord(site, t))
		if e, err := kv.Get(ctx, t.Name); err == nil && string(e.Value()) == string(v) {
			continue
		}
		if _, err := kv.Put(ctx, t.Name, v); err != nil {
			return fmt.Errorf("broker: topic record %q: %w", t.Name, unavailable(err))
		}
	}
	return nil
}

// Remote is a read-only view of another site's log: one topic, read with
// the same Reader and Bounds as a local one. It creates nothing at the other
// site and needs no rights there but reading streams and the topic records.
// Safe for concurrent use; Close must be the last call.
type Remote struct {
	b     *Broker
	topic string
	rec   TopicRecord
}

// RemoteOptions describe the other site and how to reach it.
type RemoteOptions struct {
	// Source is the link's configuration: url, prefix, auth, tls.
	Source pipelines.Source
	// Topic is the topic's name at the other site; Schema is the schema
	// its events are decoded into (the local topic's: fields are matched
	// by name, see DecodeEntry).
	Topic  string
	Schema event.Schema
	// Name names the connection at the other site's NATS, e.g.
	// "lambdaflow aggregate mirror".
	Name string
	// Path is where the source is in the pipeline file, for messages
	// about refused credentials ("topics[0].sources[1]").
	Path string
}

// remotePing is how often a link's connection pings the other site, and
// remotePings how many unanswered pings drop it: a cut link (packets
// dropped, no reset) is noticed within about a quarter of a minute instead
// of NATS' default of minutes.
const (
	remotePing  = 5 * time.Second
	remotePings = 3
)

// OpenRemote connects to the other site's NATS and reads its record of
// the topic, which gives the partitions to read. It fails with an error
// wrapping ErrUnavailable when the site cannot be reached within ctx,
// ErrNoTopicRecord when it does not advertise the topic, and a message
// naming the keys to check when it refuses the credentials or TLS settings.
func OpenRemote(ctx context.Context, ro RemoteOptions, opts Options) (*Remote, error) {
	src := ro.Source
	p := &pipelines.Pipeline{
		Name: ro.Name,
		Broker: pipelines.Broker{
			URL: src.URL, Prefix: src.Prefix, Replicas: 1,
			Creds: src.Auth.Creds, User: src.Auth.User, Password: src.Auth.Password, Token: src.Auth.Token, TLS: src.TLS,
		},
	}
	// The view's metrics are its own: the local log's names are taken.
	opts.Registerer = prometheus.NewRegistry()
	b, err := newBroker(p, opts)
	if err != nil {
		return nil, err
	}
	b.readOnly = true
	b.cfgPath = cmp.Or(ro.Path, "source")
	if err := b.connectExternal(ctx); err != nil {
		return nil, err
	}
	if b.js, err = jetstream.New(b.nc); err != nil {
		b.shutdown()
		return nil, fmt.Errorf("broker: jetstream: %w", err)
	}
	r := &Remote{b: b, topic: ro.Topic}
	if r.rec, err = r.Describe(ctx, ro.Topic); err != nil {
		b.shutdown()
		return nil, err
	}
	// The topic is set before anything else can reach the Broker, and
	// never changes: a site whose record changes is opened again.
	p.Topics = []pipelines.Topic{{Name: ro.Topic, Partitions: max(r.rec.Partitions, 1), Schema: ro.Schema}}
	b.logTopics = p.Topics
	b.topics[ro.Topic] = newTopic(b, &b.logTopics[0])
	return r, nil
}

// Record returns the topic record the Remote was opened with.
func (r *Remote) Record() TopicRecord { return r.rec }

// Describe reads the other site's record of topic name: ErrNoTopicRecord
// when there is none, ErrUnavailable when the site cannot be reached.
func (r *Remote) Describe(ctx context.Context, name string) (TopicRecord, error) {
	kv, err := r.b.js.KeyValue(ctx, r.b.prefix+"_"+topicsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return TopicRecord{}, fmt.Errorf("%w: %q (no bucket %s_%s)", ErrNoTopicRecord, name, r.b.prefix, topicsBucket)
	}
	if err != nil {
		return TopicRecord{}, fmt.Errorf("broker: topic record %q: %w", name, unavailable(err))
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return TopicRecord{}, fmt.Errorf("%w: %q", ErrNoTopicRecord, name)
	}
	if err != nil {
		return TopicRecord{}, fmt.Errorf("broker: topic record %q: %w", name, unavailable(err))
	}
	var rec TopicRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return TopicRecord{}, fmt.Errorf("broker: topic record %q: %w", name, err)
	}
	return rec, nil
}

// Reader reads partition part of the Remote's topic, as Broker.Reader.
func (r *Remote) Reader(ctx context.Context, part int, from Position) (*Reader, error) {
	return r.b.Reader(ctx, r.topic, part, from)
}

// Fetch returns up to max events of partition part from from on, as
// Broker.Fetch.
func (r *Remote) Fetch(ctx context.Context, part int, from Position, max int) ([]Entry, error) {
	return r.b.Fetch(ctx, r.topic, part, from, max)
}

// Bounds returns the bounds of partition part of the Remote's topic.
func (r *Remote) Bounds(ctx context.Context, part int) (Bounds, error) {
	return r.b.Bounds(ctx, r.topic, part)
}

// Ready returns nil when the other site's JetStream answers, as
// Broker.Ready.
func (r *Remote) Ready(ctx context.Context) error { return r.b.Ready(ctx) }

// Close closes open readers and the connection.
func (r *Remote) Close() error { return r.b.Close() }
