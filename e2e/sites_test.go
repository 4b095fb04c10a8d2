package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/natstest"
	"github.com/lambdaflow/lambdaflow/internal/netns"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// siteProc is one site's `lambdaflow run` on a host of its own: it can be
// killed (SIGKILL) and started again on the same data directory.
type siteProc struct {
	name, file string
	host       *netns.Host
	env        []string
	data       string
	url        string
	api        *client.Client

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	log    string
}

func newSiteProc(t *testing.T, name, file string, h *netns.Host, env ...string) *siteProc {
	abs, err := filepath.Abs(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	s := &siteProc{name: name, file: abs, host: h, data: t.TempDir(), url: "http://" + h.Addr(8080),
		log: filepath.Join(artifacts, "sites-"+name+".log")}
	s.env = append(os.Environ(), append(env, "LAMBDAFLOW_DATA="+s.data, "LF_HTTP="+h.Addr(8080), "LF_SITE="+name)...)
	s.api = client.New(s.url, "", &http.Client{Timeout: 5 * time.Second})
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("log of site %s:\n%s", name, tail(s.log))
		}
	})
	return s
}

// start runs the process; it is killed when the test ends.
func (s *siteProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := s.host.Command(ctx, binary, "run", "-c", s.file, "--log-format", "json")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
}

// kill sends SIGKILL (exec.CommandContext's cancel) and waits.
func (s *siteProc) kill() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// waitReady waits for /readyz 200.
func (s *siteProc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	testenv.CheckFor(t, timeout, 250*time.Millisecond, func() error {
		h, err := s.api.Ready(bg)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if h.Status != "ready" {
			return fmt.Errorf("%s: %s %v", s.name, h.Status, h.Down)
		}
		return nil
	})
}

// oracle is every event the sites acknowledged: per window, site and
// region the count and the sum of bytes, and every (site, id).
type oracle struct {
	mu   sync.Mutex
	rows map[[3]string][2]int64
	ids  map[[2]string]bool
}

// publisher posts batches to one site until stopped, each with an
// Idempotency-Key and retried until acknowledged (a retry after a lost
// answer lands once), and records what was acknowledged.
func (o *oracle) publisher(t *testing.T, s *siteProc, stop <-chan struct{}, wg *sync.WaitGroup) {
	regions := []string{"north", "south", "east"}
	base := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			key := fmt.Sprintf("%s-%d", s.name, k)
			var body strings.Builder
			type ev struct {
				ts            time.Time
				region        string
				bytes         int64
				host, idxText string
			}
			var evs []ev
			for i := range 25 {
				e := ev{ts: base.Add(time.Duration(k%7)*time.Minute + time.Duration(i)*time.Second), region: regions[(k+i)%3],
					bytes: int64(k*100 + i), host: fmt.Sprintf("h%d", (k+i)%11), idxText: fmt.Sprint(i)}
				evs = append(evs, e)
				b, _ := json.Marshal(map[string]any{"ts": e.ts.Format(time.RFC3339), "host": e.host, "region": e.region, "bytes": e.bytes})
				body.Write(append(b, '\n'))
			}
			err := testenv.Poll(context.Background(), 3*time.Minute, 200*time.Millisecond, func() error {
				ans, err := s.api.Publish(bg, "metrics", []byte(body.String()), "application/x-ndjson", key)
				if err != nil {
					return err
				}
				if len(ans.Results) != len(evs) {
					return fmt.Errorf("%d results for %d events", len(ans.Results), len(evs))
				}
				return nil
			})
			if err != nil {
				t.Errorf("publishing to %s: %v", s.name, err)
				return
			}
			o.mu.Lock()
			for i, e := range evs {
				w := e.ts.Truncate(time.Minute).Format(time.RFC3339)
				r := o.rows[[3]string{w, s.name, e.region}]
				o.rows[[3]string{w, s.name, e.region}] = [2]int64{r[0] + 1, r[1] + e.bytes}
				o.ids[[2]string{s.name, key + ":" + evs[i].idxText}] = true
			}
			o.mu.Unlock()
		}
	})
}

// mirrorLag returns hq's lag rows of the links.
func mirrorLag(hq *siteProc) ([]api.Lag, error) {
	all, err := hq.api.Lag(bg)
	if err != nil {
		return nil, err
	}
	var out []api.Lag
	for _, l := range all {
		if strings.HasPrefix(l.Consumer, "mirror.") {
			out = append(out, l)
		}
	}
	return out, nil
}

// linkLag sums a link's lag on every partition, in events and (the worst)
// seconds.
func linkLag(rows []api.Lag, consumer string) (events int64, seconds float64, n int) {
	for _, l := range rows {
		if l.Consumer == consumer {
			events += l.Lag
			seconds = max(seconds, l.LagSeconds)
			n++
		}
	}
	return
}

// TestSitesAcrossHosts runs three sites on three hosts, each with its own
// NATS and its own ingest: eu (NATS embedded), us (a nats-server of its
// own) and hq, whose topic pulls both in. Every site takes events all
// along; the link hq-eu is cut for LF_SITES_CUT (default 30s) and healed,
// eu is killed (-9) and restarted, hq is killed (-9) and restarted. In the
// end hq's view equals an oracle of every acknowledged event of every site,
// its lake holds each exactly once, and the links' lag, which grew during
// the cut, is 0.
func TestSitesAcrossHosts(t *testing.T) {
	requireBinary(t)
	cut := 30 * time.Second
	if v := os.Getenv("LF_SITES_CUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LF_SITES_CUT: %v", err)
		}
		cut = d
	}
	nw := netns.New(t)
	heu, hus, hhq := nw.AddHost("eu"), nw.AddHost("us"), nw.AddHost("hq")
	natstest.StartServer(t, hus, natstest.Config{})
	eu := newSiteProc(t, "eu", "sites-source.yaml", heu, "LF_NATS="+heu.Addr(4222))
	us := newSiteProc(t, "us", "sites-source-external.yaml", hus, "LF_NATS=nats://"+hus.Addr(natstest.ClientPort))
	hq := newSiteProc(t, "hq", "sites-hq.yaml", hhq, "LF_EU_NATS=nats://"+heu.Addr(4222), "LF_US_NATS=nats://"+hus.Addr(natstest.ClientPort))
	for _, s := range []*siteProc{eu, us, hq} {
		s.start(t)
	}
	for _, s := range []*siteProc{eu, us, hq} {
		s.waitReady(t, 90*time.Second)
	}

	o := &oracle{rows: map[[3]string][2]int64{}, ids: map[[2]string]bool{}}
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	for _, s := range []*siteProc{eu, us, hq} {
		o.publisher(t, s, stop, &pubs)
	}
	stopped := false
	stopPublishing := func() {
		if !stopped {
			stopped = true
			close(stop)
			pubs.Wait()
		}
	}
	defer stopPublishing()
	time.Sleep(3 * time.Second) // traffic before the cut; nothing is asserted on time

	// The link hq-eu is cut; both sites stay up for their clients.
	if err := hhq.Block(heu); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	testenv.CheckFor(t, 60*time.Second, time.Second, func() error {
		h, err := hq.api.Ready(bg)
		if err != nil {
			return err
		}
		if _, ok := h.Down["link eu metrics"]; !ok || h.Status == "ready" {
			return fmt.Errorf("hq /readyz does not name the link: %+v", h)
		}
		return nil
	})
	var grew float64
	testenv.CheckFor(t, cut+time.Minute, time.Second, func() error {
		rows, err := mirrorLag(hq)
		if err != nil {
			return err
		}
		_, s, _ := linkLag(rows, "mirror.eu.metrics")
		grew = max(grew, s)
		if time.Since(cutAt) < cut || grew < 0.5*cut.Seconds() {
			return fmt.Errorf("cut for %s, eu's lag %.0fs", time.Since(cutAt).Round(time.Second), s)
		}
		return nil
	})
	// The console draws the cut link with its lag, coloured by its age.
	b := newBrowser(t)
	b.openURL(t, hq.url, "overview")
	b.waitFor(t, "the cut link drawn late", `(() => {
		const e = document.querySelector('#pipeline-graph .edge[data-from="link:mirror.eu.metrics"][data-to="topic:metrics"]');
		return !!e && /(warn|bad)/.test(e.getAttribute("class")) && /the oldest ([1-9][0-9]+ s|[0-9]+m [0-9]+s) old/.test(e.textContent);
	})()`)
	// Away from hq while its processes are killed below.
	if err := chromedp.Do(b.ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if err := hhq.Unblock(heu); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	var backlog int64
	testenv.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		rows, err := mirrorLag(hq)
		if err != nil {
			return err
		}
		ev, s, n := linkLag(rows, "mirror.eu.metrics")
		backlog = max(backlog, ev)
		if n != 2 || ev != 0 || s > 5 {
			return fmt.Errorf("eu's link after the heal: %d events, %.1fs behind (%d partitions)", ev, s, n)
		}
		return nil
	})
	t.Logf("cut %s: eu's lag grew to %.0fs; after the heal it showed %d events behind at most and caught up in %s",
		cut, grew, backlog, time.Since(healed).Round(100*time.Millisecond))
	hq.waitReady(t, time.Minute)

	// A source site dies (kill -9: its embedded NATS too) and comes back.
	eu.kill()
	time.Sleep(2 * time.Second) // publishers to eu retry meanwhile
	eu.start(t)
	eu.waitReady(t, 90*time.Second)

	// The aggregate site dies mid-stream and comes back.
	hq.kill()
	time.Sleep(2 * time.Second)
	hq.start(t)
	hq.waitReady(t, 90*time.Second)
	time.Sleep(2 * time.Second)
	stopPublishing()

	total := int64(len(o.ids))
	t.Logf("%d events acknowledged by the three sites", total)
	testenv.CheckFor(t, 2*time.Minute, 500*time.Millisecond, func() error {
		rows, err := mirrorLag(hq)
		if err != nil {
			return err
		}
		for _, c := range []string{"mirror.eu.metrics", "mirror.us.metrics"} {
			if ev, s, n := linkLag(rows, c); n != 2 || ev != 0 || s != 0 {
				return fmt.Errorf("%s: %d events, %.1fs behind, %d partitions", c, ev, s, n)
			}
		}
		return hqHolds(hq, total)
	})
	testenv.CheckFor(t, time.Minute, time.Second, func() error { return viewEquals(hq, o) })
	testenv.CheckFor(t, time.Minute, time.Second, func() error { return lakeHolds(hq, o) })
	checkDashboardMetrics(t, func() (map[string]*dto.MetricFamily, error) { return scrape(hq.api) }, "mirror")

	// The console draws the links as inputs of the topic, caught up.
	b.openURL(t, hq.url, "overview")
	for _, site := range []string{"eu", "us"} {
		b.waitFor(t, "the link of "+site, `document.querySelector('#pipeline-graph [data-node="link:mirror.`+site+`.metrics"]')`)
		b.waitFor(t, "its edge to the topic, lag 0", `(() => {
			const e = document.querySelector('#pipeline-graph .edge[data-from="link:mirror.`+site+`.metrics"][data-to="topic:metrics"]');
			return !!e && /\bok\b/.test(e.getAttribute("class")) && e.textContent.includes("0 events of the other site not pulled yet");
		})()`)
	}
	b.screenshot(t, "sites")
	if errs := b.jsErrors(); len(errs) > 0 {
		t.Errorf("JavaScript errors: %v", errs)
	}
}

// hqHolds checks hq's topic holds total events.
func hqHolds(hq *siteProc, total int64) error {
	topics, err := hq.api.Topics(bg)
	if err != nil {
		return err
	}
	for _, tp := range topics {
		if tp.Name == "metrics" && tp.Events != total {
			return fmt.Errorf("hq's topic holds %d events, %d were acknowledged", tp.Events, total)
		}
	}
	return nil
}

// viewEquals compares hq's view with the oracle, row by row.
func viewEquals(hq *siteProc, o *oracle) error {
	var rows []struct {
		Start  time.Time `json:"window_start"`
		Site   string    `json:"_site"`
		Region string    `json:"region"`
		Events int64     `json:"events"`
		Bytes  int64     `json:"bytes"`
	}
	if _, err := hq.api.QueryInto(bg, "by_site", nil, time.Time{}, time.Time{}, &rows); err != nil {
		return err
	}
	got := map[[3]string][2]int64{}
	for _, r := range rows {
		got[[3]string{r.Start.UTC().Format(time.RFC3339), r.Site, r.Region}] = [2]int64{r.Events, r.Bytes}
	}
	var diffs []string
	for k, want := range o.rows {
		if got[k] != want {
			diffs = append(diffs, fmt.Sprintf("%v: view %v, acknowledged %v", k, got[k], want))
		}
	}
	for k := range got {
		if _, ok := o.rows[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%v: in the view only", k))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		return fmt.Errorf("%d of %d rows differ: %s", len(diffs), len(o.rows), strings.Join(diffs[:min(len(diffs), 8)], "; "))
	}
	return nil
}

// lakeHolds reads hq's lake through its SQL endpoint (the table
// lake.metrics is the files of the committed manifest) and checks that it
// holds every acknowledged event exactly once, with its site, and nothing
// else.
func lakeHolds(hq *siteProc, o *oracle) error {
	const page = 5000
	seen := map[[2]string]int{}
	for off := 0; ; off += page {
		res, err := hq.api.SQL(bg, api.SQLRequest{SQL: fmt.Sprintf(
			"SELECT _site, _id FROM lake.metrics ORDER BY _site, _id, _partition, _offset LIMIT %d OFFSET %d", page, off)})
		if err != nil {
			return err
		}
		for _, r := range res.Rows {
			site, _ := r[0].(string)
			id, _ := r[1].(string)
			seen[[2]string{site, id}]++
		}
		if len(res.Rows) < page {
			break
		}
	}
	n := 0
	for id, c := range seen {
		if c != 1 || !o.ids[id] {
			return fmt.Errorf("the lake holds %v %d times (acknowledged: %v)", id, c, o.ids[id])
		}
		n++
	}
	if n != len(o.ids) {
		return fmt.Errorf("the lake holds %d of the %d acknowledged events", n, len(o.ids))
	}
	return nil
}
