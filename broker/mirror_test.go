package broker

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// mirrored returns the events of a partition, in order, as "id" strings,
// with the source header of each entry.
func mirrored(t *testing.T, b *Broker, topic string, part int) (ids []string, sources []string) {
	t.Helper()
	for _, e := range readAll(t, b, topic, part) {
		for _, ev := range e.Events {
			ids = append(ids, ev.ID)
		}
	}
	ctx := ctxT(t, 10*time.Second)
	_, p, _ := b.partition(topic, part)
	st, err := b.streamOf(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = b.scanHeaders(ctx, st, p, 1, info.State.LastSeq, func(seq uint64, h nats.Header) error {
		if len(h[HeaderSource]) > 0 {
			sources = append(sources, h[HeaderSource][0]+"<"+h[HeaderSourceEnd][0])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, sources
}

// TestAppendFrom checks the compare-and-set of pulled entries: an append is
// stored only if the partition holds nothing of its source at or after its
// start, whoever wrote in between (plain appends of local ingest, another
// puller), and the mark says what it holds.
func TestAppendFrom(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{})
	ctx := ctxT(t, 30*time.Second)
	const src = "eu/metrics/0"
	evs := testEvents("eu", 0, 10, base)

	m, err := b.AppendFrom(ctx, "metrics", 0, evs[0:4], Origin{Source: src, Start: 0, End: 4})
	if err != nil || m.HW != 4 || m.Seq != 1 {
		t.Fatalf("first pull: mark %+v, %v", m, err)
	}
	// Local ingest appends in between: not of the source, no effect.
	mustAppend(t, b, "metrics", 0, testEvents("local", 0, 3, base), 4)
	// A second puller that starts over from 0 with a stale mark is refused
	// and told where the partition stands.
	_, err = b.AppendFrom(ctx, "metrics", 0, evs[0:6], Origin{Source: src, Start: 0, End: 6})
	var ahead *AheadError
	if !errors.As(err, &ahead) || !errors.Is(err, ErrAhead) || ahead.Mark.HW != 4 || ahead.Mark.Seq != 2 {
		t.Fatalf("stale pull: %v (%+v)", err, ahead)
	}
	// From the mark on it is stored.
	m, err = b.AppendFrom(ctx, "metrics", 0, evs[4:6], Origin{Source: src, Start: 4, End: 6, Since: ahead.Mark})
	if err != nil || m.HW != 6 || m.Seq != 3 {
		t.Fatalf("pull from the mark: %+v, %v", m, err)
	}
	// Another source is tracked apart.
	if _, err := b.AppendFrom(ctx, "metrics", 0, testEvents("us", 0, 2, base), Origin{Source: "us/metrics/0", Start: 0, End: 2}); err != nil {
		t.Fatalf("other source: %v", err)
	}
	ids, sources := mirrored(t, b, "metrics", 0)
	want := []string{"eu-0", "eu-1", "eu-2", "eu-3", "local-0", "local-1", "local-2", "eu-4", "eu-5", "us-0", "us-1"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("partition holds %v, want %v", ids, want)
	}
	if want := []string{"eu/metrics/0<4", "eu/metrics/0<6", "us/metrics/0<2"}; !reflect.DeepEqual(sources, want) {
		t.Errorf("source headers %v, want %v", sources, want)
	}

	// A fresh broker (a restarted process) knows nothing: given a mark, it
	// reads only what was stored after it; given none, the whole partition.
	b.Close()
	b2 := openBroker(t, testPipeline(b.p.DataDir, testTopic("metrics", 1)), Options{})
	for _, since := range []Mark{{}, {Seq: 2, HW: 4}} {
		_, err := b2.AppendFrom(ctx, "metrics", 0, evs[5:7], Origin{Source: src, Start: 5, End: 7, Since: since})
		if !errors.As(err, &ahead) || ahead.Mark.HW != 6 {
			t.Fatalf("after a restart, since %+v: %v", since, err)
		}
	}
	if _, err := b2.AppendFrom(ctx, "metrics", 0, evs[6:7], Origin{Source: src, Start: 6, End: 7}); err != nil {
		t.Fatalf("after a restart, from the mark: %v", err)
	}
	if _, err := b2.AppendFrom(ctx, "metrics", 0, evs[:1], Origin{Source: src, Start: 3, End: 2}); err == nil {
		t.Error("an origin that ends before it starts was taken")
	}
}

// TestAppendFromScansMany checks the mark across more entries than are
// read one by one (a busy partition between two pulls).
func TestAppendFromScansMany(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{})
	ctx := ctxT(t, 60*time.Second)
	const src = "eu/metrics/0"
	if _, err := b.AppendFrom(ctx, "metrics", 0, testEvents("eu", 0, 1, base), Origin{Source: src, Start: 0, End: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 * scanDirect {
		if _, err := b.Append(ctx, "metrics", 0, testEvents("l"+strconv.Itoa(i), 0, 1, base)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.AppendFrom(ctx, "metrics", 0, testEvents("eu", 1, 1, base), Origin{Source: src, Start: 1, End: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * scanDirect {
		if _, err := b.Append(ctx, "metrics", 0, testEvents("m"+strconv.Itoa(i), 0, 1, base)); err != nil {
			t.Fatal(err)
		}
	}
	// A new process from the start: 3 × 32 + 2 × 32 + 2 entries to read.
	b.Close()
	b2 := openBroker(t, testPipeline(b.p.DataDir, testTopic("metrics", 1)), Options{})
	_, err := b2.AppendFrom(ctx, "metrics", 0, testEvents("eu", 1, 1, base), Origin{Source: src, Start: 1, End: 2})
	var ahead *AheadError
	if !errors.As(err, &ahead) || ahead.Mark.HW != 2 || ahead.Mark.Seq != uint64(5*scanDirect+2) {
		t.Fatalf("want the mark {seq %d, hw 2}, got %v", 5*scanDirect+2, err)
	}
}

// TestAppendFromRacing runs pullers of the same source side by side with a
// local writer: each source event lands exactly once, in source order.
func TestAppendFromRacing(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{})
	ctx := ctxT(t, 60*time.Second)
	const src, total, per = "eu/metrics/0", 200, 7
	evs := testEvents("eu", 0, total, base)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 3 {
		wg.Go(func() {
			var mark Mark
			for start := 0; start < total; {
				end := min(start+per, total)
				m, err := b.AppendFrom(ctx, "metrics", 0, evs[start:end], Origin{Source: src, Start: int64(start), End: int64(end), Since: mark})
				var ahead *AheadError
				switch {
				case errors.As(err, &ahead):
					refused.Add(1)
					mark = ahead.Mark
					start = int(ahead.Mark.HW) // skip what is there
				case err != nil:
					t.Errorf("AppendFrom: %v", err)
					return
				default:
					mark, start = m, end
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			if _, err := b.Append(ctx, "metrics", 0, testEvents("local"+strconv.Itoa(i), 0, 1, base)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
		}
	})
	wg.Wait()
	ids, _ := mirrored(t, b, "metrics", 0)
	var got []string
	locals := 0
	for _, id := range ids {
		if id[:2] == "eu" {
			got = append(got, id)
		} else {
			locals++
		}
	}
	var want []string
	for i := range total {
		want = append(want, fmt.Sprintf("eu-%d", i))
	}
	if !reflect.DeepEqual(got, want) || locals != 50 {
		t.Fatalf("partition holds %d source events (%v…), %d local; want each of %d once in order and 50 local", len(got), got[:min(len(got), 12)], locals, total)
	}
	if refused.Load() == 0 {
		t.Log("no puller was refused: the race did not happen this run")
	}
}

// TestRemote checks another site's view: the topic record it advertises,
// reads of its log into the local schema, bounds, and that it creates
// nothing there.
func TestRemote(t *testing.T) {
	port := freePorts(t, 1)[0]
	rp := testPipeline(t.TempDir(), testTopic("metrics", 2))
	rp.Name, rp.Site = "shop", "eu"
	rp.Broker.Listen = "127.0.0.1:" + strconv.Itoa(port)
	rp.Broker.Prefix = "EU"
	remote := openBroker(t, rp, Options{})
	ctx := ctxT(t, 30*time.Second)
	mustAppend(t, remote, "metrics", 1, testEvents("e", 0, 3, base), 0)

	src := pipelines.Source{Site: "eu", URL: "nats://127.0.0.1:" + strconv.Itoa(port), Prefix: "EU"}
	// The local schema lacks "up" and adds _site, in another order.
	local := event.Schema{testSchema()[1], testSchema()[0], testSchema()[3], {Name: pipelines.SiteField, Type: event.TypeString, Required: true}}
	r, err := OpenRemote(ctx, RemoteOptions{Source: src, Topic: "metrics", Schema: local, Name: "test"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec := r.Record()
	if rec.Site != "eu" || rec.Partitions != 2 || !reflect.DeepEqual(rec.EventSchema(), testSchema()) {
		t.Errorf("record %+v", rec)
	}
	if _, err := r.Describe(ctx, "nope"); !errors.Is(err, ErrNoTopicRecord) {
		t.Errorf("unknown topic: %v", err)
	}
	if _, err := OpenRemote(ctx, RemoteOptions{Source: src, Topic: "nope", Schema: local}, Options{}); !errors.Is(err, ErrNoTopicRecord) {
		t.Errorf("OpenRemote of an unknown topic: %v", err)
	}
	bd, err := r.Bounds(ctx, 1)
	if err != nil || bd != (Bounds{Start: 0, End: 3}) {
		t.Errorf("bounds %+v, %v", bd, err)
	}
	rd, err := r.Reader(ctx, 1, FromOffset(1))
	if err != nil {
		t.Fatal(err)
	}
	e, err := rd.Next(ctx)
	rd.Close()
	if err != nil {
		t.Fatal(err)
	}
	if e.Offset != 1 || len(e.Events) != 2 || e.Events[0].ID != "e-1" {
		t.Fatalf("entry %+v", e)
	}
	v := e.Events[0].Values
	if v[0].S != "host-1" || v[2].F != 0.25 || v[3].Valid {
		t.Errorf("event read into the local schema: %+v", v)
	}
	if err := r.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	// Nothing was created there: its streams and buckets are its own.
	names := remote.js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	want := map[string]bool{"EU_metrics_0": true, "EU_metrics_1": true, "KV_EU_offsets": true, "KV_EU_topics": true}
	for _, s := range streams {
		if !want[s] {
			t.Errorf("stream %s at the other site", s)
		}
	}

}

// TestRemoteRefused checks that a site refusing the link's credentials
// fails OpenRemote naming the source's keys, without the secret.
func TestRemoteRefused(t *testing.T) {
	ns := extServer(t, func(o *server.Options) { o.Authorization = "right-token-9f2" })
	src := pipelines.Source{Site: "eu", URL: ns.ClientURL(), Prefix: "LF", Auth: pipelines.SourceAuth{Token: "wrong-token-77a"}}
	_, err := OpenRemote(ctxT(t, 20*time.Second), RemoteOptions{Source: src, Topic: "metrics", Schema: testSchema(),
		Path: "topics[0].sources[0]"}, Options{})
	if err == nil {
		t.Fatal("OpenRemote with a wrong token succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "topics[0].sources[0].auth.token") || strings.Contains(msg, "wrong-token") {
		t.Errorf("error: %v", err)
	}
}

// TestMirrorPositionsInLag checks that links' positions show in Lag as
// consumers of the local topic, with the other site's partitions and
// offsets, their lag in seconds by append time and by event time at the
// other site, counted from the last contact once it is old.
func TestMirrorPositionsInLag(t *testing.T) {
	var nowUS atomic.Int64
	nowUS.Store(base + 60_000_000)
	clock := func() time.Time { return time.UnixMicro(nowUS.Load()) }
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{Now: clock})
	ctx := ctxT(t, 30*time.Second)
	now := nowUS.Load()
	pos := MirrorPosition{Topic: "metrics", Offset: 10, End: 25, Oldest: now - 4_000_000, OldestEvent: now - 9_000_000, Seen: now, Marks: []Mark{{Seq: 3, HW: 10}}}
	if err := b.CommitMirror(ctx, "mirror.eu.metrics", 2, pos); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitMirror(ctx, "mirror.us.metrics", 0, MirrorPosition{Topic: "metrics", Offset: 7, End: 7, Seen: now}); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitMirror(ctx, "mirror.x.gone", 0, MirrorPosition{Topic: "gone"}); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	got, ok, err := b.MirrorPosition(ctx, "mirror.eu.metrics", 2)
	if err != nil || !ok || got.Offset != 10 || !reflect.DeepEqual(got.Marks, pos.Marks) || got.CommittedAt != now {
		t.Fatalf("MirrorPosition: %+v %v %v", got, ok, err)
	}
	if _, ok, err := b.MirrorPosition(ctx, "mirror.eu.metrics", 0); ok || err != nil {
		t.Errorf("never committed: %v %v", ok, err)
	}
	lags, err := b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Lag{
		{Consumer: "mirror.eu.metrics", Topic: "metrics", Partition: 2, Offset: 10, EndOffset: 25, Lag: 15, LagSeconds: 4,
			EventTimeLagSeconds: 9, ReadOffset: 10, ReadLag: 15, ReadLagSeconds: 4},
		{Consumer: "mirror.us.metrics", Topic: "metrics", Partition: 0, Offset: 7, EndOffset: 7, ReadOffset: 7},
	}
	if !reflect.DeepEqual(lags, want) {
		t.Errorf("Lag:\n got %+v\nwant %+v", lags, want)
	}
	// A minute without contact: both count the minute.
	nowUS.Add(60_000_000)
	lags, err = b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 2 || lags[0].LagSeconds != 64 || lags[0].ReadLagSeconds != 64 || lags[0].EventTimeLagSeconds != 69 ||
		lags[1].LagSeconds != 60 || lags[1].ReadLagSeconds != 60 || lags[1].EventTimeLagSeconds != 60 {
		t.Errorf("after a minute without contact: %+v", lags)
	}
}
