package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// want checks that hq holds exactly the events of the given sites, each
// once, with its site, in the partition its key gives.
func want(hq *site, counts map[string]int) error {
	got := hq.events()
	n := 0
	for name, c := range counts {
		for i := range c {
			id := fmt.Sprintf("%s-%d", name, i)
			x := got[id]
			if x.count != 1 || x.site != name {
				return fmt.Errorf("event %s: %d times, site %q (hq holds %d events)", id, x.count, x.site, len(got))
			}
			ev := event.Event{ID: id, Values: []event.Value{{}, {S: "host-" + fmt.Sprint(i%5), Valid: true}}}
			if p := event.EventPartition(&ev, 1, event.TypeString, hq.p.Topics[0].Partitions); x.partition != p {
				return fmt.Errorf("event %s in partition %d, its key's is %d", id, x.partition, p)
			}
		}
		n += c
	}
	if len(got) != n {
		return fmt.Errorf("hq holds %d events, want %d", len(got), n)
	}
	return nil
}

// caughtUp checks that every partition of consumer has lag 0 at end.
func caughtUp(hq *site, consumer string, parts int, end int64) error {
	rows := hq.lag(consumer)
	if len(rows) != parts {
		return fmt.Errorf("%s: %d lag rows, want %d: %+v", consumer, len(rows), parts, rows)
	}
	var total int64
	for _, r := range rows {
		if r.Lag != 0 || r.LagSeconds != 0 || r.Topic != "metrics" {
			return fmt.Errorf("%s: %+v", consumer, r)
		}
		total += r.EndOffset
	}
	if total != end {
		return fmt.Errorf("%s: end offsets add up to %d, want %d", consumer, total, end)
	}
	return nil
}

// TestMirrorPullsSites pulls two sites into a third, whose partitions
// differ from theirs, with local events beside: every event once, with
// its site, where its key puts it; lag 0 and readiness at the end.
func TestMirrorPullsSites(t *testing.T) {
	eu := newSite(t, "eu", 2)
	us := newSite(t, "us", 1)
	hq := newSite(t, "hq", 3, eu, us)
	eu.publish(0, 300)
	us.publish(0, 120)
	hq.publish(0, 50)
	run := hq.runMirror()
	eu.publish(300, 200) // while it runs
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 500, "us": 120, "hq": 50}) })
	checkFor(t, 10*time.Second, func() error {
		return errors.Join(caughtUp(hq, "mirror.eu.metrics", 2, 500), caughtUp(hq, "mirror.us.metrics", 1, 120))
	})
	for _, c := range run.mr.Checks() {
		if err := c.Ready(context.Background()); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if v := testutil.ToFloat64(run.mr.m.events.WithLabelValues("eu", "metrics")); v != 500 {
		t.Errorf("events_total{eu} %v", v)
	}
	var s api.Stats
	run.mr.AddStats(&s)
	if len(s.Links) != 2 || !s.Links[0].Up || s.Links[0].Events != 500 || s.Links[0].Consumer != "mirror.eu.metrics" || s.Links[1].Partitions != 1 {
		t.Errorf("stats %+v", s.Links)
	}
}

// TestMirrorExactlyOnceOnReplay makes a link pull everything again (its
// position lost, and two processes running it at once): nothing lands
// twice, and what was already there is counted as skipped.
func TestMirrorExactlyOnceOnReplay(t *testing.T) {
	eu := newSite(t, "eu", 2)
	hq := newSite(t, "hq", 2, eu)
	eu.publish(0, 400)
	run := hq.runMirror()
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 400}) })
	run.stop()

	// The position goes back to the start, as if its commits were lost,
	// and the marks know nothing.
	ctx := context.Background()
	for p := range 2 {
		if err := hq.b.CommitMirror(ctx, "mirror.eu.metrics", p, broker.MirrorPosition{Topic: "metrics", Marks: []broker.Mark{{}, {}}}); err != nil {
			t.Fatal(err)
		}
	}
	eu.publish(400, 100)
	a, b := hq.runMirror(), hq.runMirror()
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 500}) })
	checkFor(t, 10*time.Second, func() error { return caughtUp(hq, "mirror.eu.metrics", 2, 500) })
	skipped := testutil.ToFloat64(a.mr.m.skipped.WithLabelValues("eu", "metrics")) + testutil.ToFloat64(b.mr.m.skipped.WithLabelValues("eu", "metrics"))
	appended := testutil.ToFloat64(a.mr.m.events.WithLabelValues("eu", "metrics")) + testutil.ToFloat64(b.mr.m.events.WithLabelValues("eu", "metrics"))
	if appended != 100 || skipped < 400 {
		t.Errorf("appended %v (want 100), skipped %v (want at least 400)", appended, skipped)
	}
}

// TestMirrorSiteDown stops the other site: the link is reported down,
// naming it, its lag in seconds grows; back, it resumes and catches up,
// exactly once.
func TestMirrorSiteDown(t *testing.T) {
	eu := newSite(t, "eu", 1)
	hq := newSite(t, "hq", 1, eu)
	eu.publish(0, 100)
	run := hq.runMirror()
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 100}) })
	check := run.mr.Checks()[0]
	if check.Name != "link eu metrics" {
		t.Errorf("check name %q", check.Name)
	}

	eu.close()
	checkFor(t, 30*time.Second, func() error {
		err := check.Ready(context.Background())
		if err == nil {
			return errors.New("still ready")
		}
		if !strings.Contains(err.Error(), eu.url()) {
			return fmt.Errorf("the check does not name the site: %v", err)
		}
		return nil
	})
	checkFor(t, 30*time.Second, func() error {
		rows := hq.lag("mirror.eu.metrics")
		if len(rows) != 1 || rows[0].LagSeconds < 10 {
			return fmt.Errorf("lag while down: %+v", rows)
		}
		return nil
	})

	eu.open()
	eu.publish(100, 50)
	checkFor(t, 60*time.Second, func() error { return want(hq, map[string]int{"eu": 150}) })
	checkFor(t, 10*time.Second, func() error { return caughtUp(hq, "mirror.eu.metrics", 1, 150) })
	checkFor(t, 10*time.Second, func() error { return check.Ready(context.Background()) })
}

// TestMirrorSchemaMismatch checks that a source whose topic differs from
// the local one is refused with the differences, and nothing is pulled;
// then that a link pulling from a site whose schema changes under it stops
// there, pulls none of the events of the new schema and says why.
func TestMirrorSchemaMismatch(t *testing.T) {
	eu := newSite(t, "eu", 1)
	eu.publish(0, 10)
	hq := newSite(t, "hq", 1, eu)
	hq.close()
	same := slices.Clone(hq.p.Topics[0].Schema)
	hq.p.Topics[0].Schema[2].Type = event.TypeLong                                        // cpu: double there
	hq.p.Topics[0].Schema = append(hq.p.Topics[0].Schema[:3:3], hq.p.Topics[0].Schema[4]) // no n here
	hq.p.Topics[0].Sources[0].Site = "europe"
	hq.open()
	run := hq.runMirror()
	check := run.mr.Checks()[0]
	checkFor(t, 20*time.Second, func() error {
		err := check.Ready(context.Background())
		if err == nil || !strings.Contains(err.Error(), `calls itself "eu", not "europe"`) {
			return fmt.Errorf("site name: %v", err)
		}
		return nil
	})
	run.stop()
	hq.p.Topics[0].Sources[0].Site = "eu"
	run = hq.runMirror()
	check = run.mr.Checks()[0]
	checkFor(t, 20*time.Second, func() error {
		err := check.Ready(context.Background())
		if err == nil || !strings.Contains(err.Error(), `differ: field "cpu" is double there, long here; field "n" is not here`) {
			return fmt.Errorf("schema: %v", err)
		}
		return nil
	})
	if got := hq.events(); len(got) != 0 {
		t.Errorf("pulled %d events despite the difference", len(got))
	}
	run.stop()

	// Fixed here: the link pulls.
	hq.close()
	hq.p.Topics[0].Schema = same
	hq.open()
	run = hq.runMirror()
	check = run.mr.Checks()[0]
	checkFor(t, 20*time.Second, func() error { return want(hq, map[string]int{"eu": 10}) })
	checkFor(t, 10*time.Second, func() error { return check.Ready(context.Background()) })

	// eu makes n a double and appends events with it at once: whether the
	// link first reads the new record or an entry that no longer fits, it
	// stops before them and names the field.
	eu.close()
	eu.p.Topics[0].Schema[3].Type = event.TypeDouble
	eu.open()
	var evs []event.Event
	for i := 10; i < 15; i++ {
		evs = append(evs, event.Event{ID: fmt.Sprintf("eu-%d", i), Time: int64(i) * 1000, Values: []event.Value{
			{I: int64(i) * 1000, Valid: true}, {S: "host-0", Valid: true}, {F: 1, Valid: true}, {F: 0.5, Valid: true},
		}})
	}
	if _, err := eu.b.Append(context.Background(), "metrics", 0, evs); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, func() error {
		err := check.Ready(context.Background())
		if err == nil || !strings.Contains(err.Error(), `differ: field "n" is double there, long here`) {
			return fmt.Errorf("schema changed there: %v", err)
		}
		return nil
	})
	if err := want(hq, map[string]int{"eu": 10}); err != nil {
		t.Error(err)
	}
	rows := hq.lag("mirror.eu.metrics")
	if len(rows) != 1 || rows[0].Offset != 10 {
		t.Errorf("the link's position moved past the events it cannot take: %+v", rows)
	}
}
