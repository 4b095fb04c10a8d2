package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// The console tests load the web console in headless Chromium against the
// shared process and compare what the pages show with the API's answers.
// Every subtest leaves a screenshot in the artifacts directory.

// findChromium returns the browser to drive: LF_CHROMIUM, or Debian's
// chromium (apt-get install -y chromium), or a Chrome on the PATH.
func findChromium() string {
	if p := os.Getenv("LF_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium tab and the JavaScript errors it saw.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium()
	if path == "" {
		msg := "no chromium on this machine (apt-get install -y chromium, or set LF_CHROMIUM)"
		if os.Getenv("LF_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	}))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	// Every page a test loads must run without an uncaught exception.
	t.Cleanup(func() {
		if errs := b.jsErrors(); len(errs) > 0 {
			t.Errorf("JavaScript exceptions: %v", errs)
		}
	})
	return b
}

// jsErrors returns and forgets the uncaught exceptions so far.
func (b *browser) jsErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.errors
	b.errors = nil
	return out
}

// eval runs expr in the page and decodes its JSON value into out.
func (b *browser) eval(t *testing.T, expr string, out any) {
	t.Helper()
	if err := b.tryEval(expr, out); err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
}

func (b *browser) tryEval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// waitFor polls the page until expr is true.
func (b *browser) waitFor(t *testing.T, what, expr string) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var ok bool
		if err := b.tryEval("!!("+expr+")", &ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the page never showed %s (%s)", what, expr)
		}
		return nil
	})
}

// open goes to a console page (a hash route).
func (b *browser) open(t *testing.T, p *process, route string) {
	t.Helper()
	b.openURL(t, p.url, route)
}

// openURL goes to a console page of the process at base.
func (b *browser) openURL(t *testing.T, base, route string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#/"+route)); err != nil {
		t.Fatal(err)
	}
}

// screenshot saves the whole page as <artifacts>/console-<name>.png.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(artifacts, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
		return
	}
	t.Logf("screenshot: %s", path)
}

func TestConsole(t *testing.T) {
	p, f := sharedPipeline(t)
	b := newBrowser(t)

	t.Run("token prompt", func(t *testing.T) {
		b.open(t, p, "consumers")
		b.waitFor(t, "the token prompt", `document.getElementById("token-dialog").open`)
		b.screenshot(t, "token")
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#token-input"), p.token),
			chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "data after the token", `Number(document.body.dataset.samples) > 0 && document.getElementById("ready") !== null`)
	})

	t.Run("lag table", func(t *testing.T) {
		defer b.screenshot(t, "consumers")
		b.open(t, p, "consumers")
		lag := got(p.api.Lag(bg))(t)
		if len(lag) == 0 {
			t.Skip("no consumers in /v1/lag: the layers are not wired into `lambdaflow run` yet")
		}
		b.waitFor(t, "every consumer row", fmt.Sprintf(`document.querySelectorAll("#lag tr.lag-row").length === %d`, len(lag)))
		var rows []struct {
			Consumer, Topic                                     string
			Partition, Offset, End, Lag, ReadOffset, ReadLag    int64
			LagSeconds, ReadLagSeconds, EventTimeLagSeconds     float64
			OffsetText, EndText, LagText, ReadText, ReadLagText string
		}
		b.eval(t, `[...document.querySelectorAll("#lag tr.lag-row")].map(r => ({
			Consumer: r.dataset.consumer, Topic: r.dataset.topic, Partition: Number(r.dataset.partition),
			Offset: Number(r.querySelector(".offset").dataset.value), End: Number(r.querySelector(".end").dataset.value),
			Lag: Number(r.querySelector(".lag").dataset.value), LagSeconds: Number(r.querySelector(".lag-seconds").dataset.value),
			ReadOffset: Number(r.querySelector(".read-offset").dataset.value), ReadLag: Number(r.querySelector(".read-lag").dataset.value),
			ReadLagSeconds: Number(r.querySelector(".read-lag-seconds").dataset.value),
			EventTimeLagSeconds: Number(r.querySelector(".event-time-lag").dataset.value),
			OffsetText: r.querySelector(".offset").textContent, EndText: r.querySelector(".end").textContent,
			LagText: r.querySelector(".lag").textContent, ReadText: r.querySelector(".read-offset").textContent,
			ReadLagText: r.querySelector(".read-lag").textContent}))`, &rows)
		lag = got(p.api.Lag(bg))(t)
		want := map[string]api.Lag{}
		for _, l := range lag {
			want[fmt.Sprintf("%s/%s/%d", l.Consumer, l.Topic, l.Partition)] = l
		}
		for i, r := range rows {
			k := fmt.Sprintf("%s/%s/%d", r.Consumer, r.Topic, r.Partition)
			w, ok := want[k]
			if !ok {
				t.Errorf("row %s is not in /v1/lag", k)
				continue
			}
			// Positions are exact; the age of a stuck consumer's oldest
			// event grows while we look.
			if r.Offset != w.Offset || r.End != w.EndOffset || r.Lag != w.Lag || math.Abs(r.LagSeconds-w.LagSeconds) > 5 ||
				r.ReadOffset != w.ReadOffset || r.ReadLag != w.ReadLag || math.Abs(r.ReadLagSeconds-w.ReadLagSeconds) > 5 ||
				math.Abs(r.EventTimeLagSeconds-w.EventTimeLagSeconds) > 5 {
				t.Errorf("row %s shows %+v; the API says %+v", k, r, w)
			}
			if strings.ReplaceAll(r.LagText, ",", "") != strconv.FormatInt(r.Lag, 10) || strings.ReplaceAll(r.OffsetText, ",", "") != strconv.FormatInt(r.Offset, 10) ||
				strings.ReplaceAll(r.ReadLagText, ",", "") != strconv.FormatInt(r.ReadLag, 10) || strings.ReplaceAll(r.ReadText, ",", "") != strconv.FormatInt(r.ReadOffset, 10) {
				t.Errorf("row %s: texts %q, %q, %q, %q do not show lag %d, offset %d, read lag %d, read offset %d", k, r.LagText, r.OffsetText, r.ReadLagText, r.ReadText, r.Lag, r.Offset, r.ReadLag, r.ReadOffset)
			}
			if i > 0 && rows[i-1].ReadLagSeconds < r.ReadLagSeconds {
				t.Errorf("rows not worst first: %s (%.1f s) after %s/%s/%d (%.1f s)", k, r.ReadLagSeconds, rows[i-1].Consumer, rows[i-1].Topic, rows[i-1].Partition, rows[i-1].ReadLagSeconds)
			}
		}
		if f.sinks && rows[0].Consumer != stuckSink {
			t.Errorf("worst row is %s, want the stuck %s", rows[0].Consumer, stuckSink)
		}
	})

	t.Run("message browser", func(t *testing.T) {
		defer b.screenshot(t, "messages")
		part := f.events[0].partition()
		q := url.Values{"topic": {seedTopic}, "partition": {strconv.Itoa(part)}, "from": {"0"}, "limit": {"100"}}
		b.open(t, p, "messages?"+q.Encode())
		ans := got(p.api.Events(bg, seedTopic, client.Browse{Partition: &part, From: "0", Limit: 100}))(t)
		b.waitFor(t, "the messages", fmt.Sprintf(`document.querySelectorAll("#msg-list details.message").length === %d`, len(ans.Events)))
		var shown []struct {
			Partition, Offset int
			ID, JSON          string
		}
		b.eval(t, `[...document.querySelectorAll("#msg-list details.message")].map(d => ({
			Partition: Number(d.dataset.partition), Offset: Number(d.dataset.offset), ID: d.dataset.id,
			JSON: d.querySelector("pre.json").textContent}))`, &shown)
		for i, s := range shown {
			w := ans.Events[i]
			var ev, wantEv map[string]any
			if err := json.Unmarshal([]byte(s.JSON), &ev); err != nil {
				t.Errorf("message %d: pretty JSON %q does not parse: %v", i, s.JSON, err)
			}
			json.Unmarshal(w.Event, &wantEv)
			if s.Partition != w.Partition || int64(s.Offset) != w.Offset || s.ID != w.ID || !reflect.DeepEqual(ev, wantEv) {
				t.Errorf("message %d shows %+v, the API says %+v", i, s, w)
			}
		}
		var href string
		b.eval(t, `document.getElementById("msg-download").getAttribute("href")`, &href)
		u, err := url.Parse(href)
		if err != nil || u.Path != "/v1/topics/"+seedTopic+"/events" || u.Query().Get("format") != "ndjson" || u.Query().Get("partition") != strconv.Itoa(part) || u.Query().Get("from") != "0" {
			t.Errorf("download link %q, want the same selection with format=ndjson", href)
		}

		// By time: everything ingested since the seed.
		q = url.Values{"topic": {seedTopic}, "partition": {strconv.Itoa(part)}, "from": {f.seededAt.Add(-time.Second).Format(time.RFC3339)}, "limit": {"100"}}
		b.open(t, p, "messages?"+q.Encode())
		b.waitFor(t, "the messages by time", fmt.Sprintf(`document.querySelectorAll("#msg-list details.message").length === %d`, len(f.byPartition(part))))
	})

	t.Run("topics", func(t *testing.T) {
		defer b.screenshot(t, "topics")
		b.open(t, p, "topics")
		b.waitFor(t, "the topic", `document.querySelector('.topic[data-topic="metrics"] .topic-events')`)
		topics := got(p.api.Topics(bg))(t)
		var shown struct {
			Events int64
			Ends   []int64
		}
		b.eval(t, `({Events: Number(document.querySelector('.topic[data-topic="metrics"] .topic-events').dataset.value),
			Ends: [...document.querySelectorAll('.topic[data-topic="metrics"] tr[data-partition] td.end')].map(td => Number(td.textContent.replaceAll(",", "")))})`, &shown)
		for _, tp := range topics {
			if tp.Name != seedTopic {
				continue
			}
			var ends []int64
			for _, pt := range tp.Partitions {
				ends = append(ends, pt.EndOffset)
			}
			if shown.Events != tp.Events || !reflect.DeepEqual(shown.Ends, ends) {
				t.Errorf("topics page shows %d events, end offsets %v; the API says %d, %v", shown.Events, shown.Ends, tp.Events, ends)
			}
		}
	})

	t.Run("recompute", func(t *testing.T) {
		if !f.batch {
			t.Skip("GET /v1/jobs answers 404: the batch layer is not wired into `lambdaflow run` yet")
		}
		defer b.screenshot(t, "jobs")
		b.open(t, p, "jobs")
		b.waitFor(t, "the recompute button", `document.querySelector("#recompute-view option")`)
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		// The read token may not recompute; the console says why.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#recompute"))); err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "the refusal", `document.getElementById("recompute-result").textContent === "Recompute failed: token may read but not administer (recompute, replay) (auth.admin_tokens)"`)
		// Signed in again with the admin token, it may.
		err := chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS("#signout")),
			chromedp.WaitVisible(chromedp.CSS("#token-input")),
			chromedp.SendKeys(chromedp.CSS("#token-input"), p.token+"-admin"),
			chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		b.open(t, p, "jobs")
		b.waitFor(t, "the recompute button", `document.querySelector("#recompute-view option")`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#recompute"))); err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "the started job", `document.getElementById("recompute-job")`)
		var id string
		b.eval(t, `document.getElementById("recompute-job").textContent`, &id)
		b.waitFor(t, "the job succeeding", fmt.Sprintf(`document.querySelector('tr.job-row[data-job=%q][data-state="succeeded"]')`, id))
		job := got(p.api.Job(bg, id))(t)
		if job.State != "succeeded" || job.View != seedView {
			t.Errorf("the API says job %s is %+v", id, job)
		}
		// A job that changed nothing is not shown as a green success.
		var badge string
		b.eval(t, fmt.Sprintf(`(() => { const r = document.querySelector('tr.job-row[data-job=%q]'); const s = r.querySelector('.job-state'); return r.dataset.nothing + " " + s.textContent + " " + s.classList.contains("ok"); })()`, id), &badge)
		want := "false succeeded true"
		if job.NothingToDo {
			want = "true nothing to do false"
		}
		if badge != want {
			t.Errorf("job %s (nothing_to_do %v, note %q) is shown as %q, want %q", id, job.NothingToDo, job.Note, badge, want)
		}
	})

	t.Run("view chart", func(t *testing.T) {
		defer b.screenshot(t, "views")
		view := got(p.view(nil))(t)
		if len(view.Rows) == 0 {
			t.Skip("the view has no rows: neither the speed nor the batch layer is wired into `lambdaflow run` yet")
		}
		if f.speed && view.Horizon != nil {
			// Windows past the horizon, so the chart shows both layers.
			f.postFresh(t, p)
			view = got(p.view(nil))(t)
		}
		b.open(t, p, "views?view="+seedView+"&agg=avg_cpu")
		b.waitFor(t, "every point", fmt.Sprintf(`document.querySelectorAll("#view-chart-svg .point").length === %d`, len(view.Rows)))
		type point struct {
			Window, Group, Layer string
			Value                float64
		}
		var shown []point
		b.eval(t, `[...document.querySelectorAll("#view-chart-svg .point")].map(e => ({
			Window: e.dataset.windowStart, Group: e.dataset.group, Layer: e.dataset.layer, Value: Number(e.dataset.value)}))`, &shown)
		view = got(p.view(nil))(t)
		var want []point
		for _, r := range view.Rows {
			want = append(want, point{r.WindowStart, r.Region, r.Layer, r.AvgCPU})
		}
		byKey := func(ps []point) {
			sort.Slice(ps, func(i, j int) bool { return ps[i].Window+ps[i].Group < ps[j].Window+ps[j].Group })
		}
		byKey(shown)
		byKey(want)
		if len(shown) != len(want) {
			t.Errorf("chart has %d points, the API %d rows", len(shown), len(want))
		}
		for i := range min(len(shown), len(want)) {
			s, w := shown[i], want[i]
			if s.Window != w.Window || s.Group != w.Group || s.Layer != w.Layer || math.Abs(s.Value-w.Value) > 1e-9 {
				t.Errorf("chart point %+v, the API says %+v", s, w)
			}
		}
		if view.Horizon != nil {
			var hz string
			b.eval(t, `(document.querySelector("#view-chart-svg .horizon") || {dataset: {}}).dataset.horizon || ""`, &hz)
			var layers []string
			b.eval(t, `[...new Set([...document.querySelectorAll("#view-chart-svg .point")].map(e => e.dataset.layer))].sort()`, &layers)
			t.Logf("horizon %s; layers on the chart: %v", *view.Horizon, layers)
			if hz != "" && hz != *view.Horizon {
				t.Errorf("chart horizon %q, the API says %q", hz, *view.Horizon)
			}
		}
		var tableRows int
		b.eval(t, `document.querySelectorAll("#view-table tr.view-row").length`, &tableRows)
		if tableRows != len(view.Rows) {
			t.Errorf("table has %d rows, the API %d", tableRows, len(view.Rows))
		}
	})

	t.Run("sinks", func(t *testing.T) {
		if !f.sinks {
			t.Skip("GET /v1/sinks answers 404: the sinks are not wired into `lambdaflow run` yet")
		}
		defer b.screenshot(t, "sinks")
		b.open(t, p, "sinks?dlq=warehouse")
		b.waitFor(t, "both sinks", `document.querySelectorAll(".sink[data-sink]").length === 2`)
		var health map[string]string
		b.eval(t, `Object.fromEntries([...document.querySelectorAll(".sink[data-sink]")].map(e => [e.dataset.sink, e.dataset.healthy]))`, &health)
		if want := map[string]string{"warehouse": "true", "archive": "false"}; !reflect.DeepEqual(health, want) {
			t.Errorf("sink health shown %v, want %v", health, want)
		}
		b.waitFor(t, "the warehouse's dead letters (none)", `document.querySelector("#dlq h2") && document.querySelector("#dlq").textContent.includes("No dead letters")`)
	})

	t.Run("cluster", func(t *testing.T) {
		defer b.screenshot(t, "cluster")
		b.open(t, p, "cluster")
		cl := got(p.api.Cluster(bg))(t)
		if len(cl.Nodes) != 1 {
			t.Fatalf("GET /v1/cluster lists %d processes, want this one: %+v", len(cl.Nodes), cl.Nodes)
		}
		n := cl.Nodes[0]
		owned := 0
		for _, parts := range n.Owns {
			owned += len(parts)
		}
		if owned == 0 {
			t.Fatalf("the one process owns no partition: %+v", n)
		}
		b.waitFor(t, "the process and what it owns", fmt.Sprintf(
			`document.querySelector('tr.cluster-node[data-node="%s"] .owned')?.dataset.value === "%d"`, n.ID, owned))
		// Every owned partition is listed under its consumer, owned by it.
		var shown []string
		b.eval(t, `[...document.querySelectorAll("tr.cluster-owner")].map(r => r.dataset.consumer + "/" + r.dataset.partition + "@" + r.dataset.node)`, &shown)
		var want []string
		for c, parts := range n.Owns {
			for _, part := range parts {
				want = append(want, fmt.Sprintf("%s/%d@%s", c, part, n.ID))
			}
		}
		slices.Sort(shown)
		slices.Sort(want)
		if !slices.Equal(shown, want) {
			t.Errorf("the page shows %v, the API %v", shown, want)
		}
	})

	t.Run("overview graph", func(t *testing.T) {
		defer b.screenshot(t, "overview")
		b.open(t, p, "overview")
		b.waitFor(t, "the pipeline graph", `document.querySelector('#pipeline-graph [data-node="topic:metrics"]')`)
		for _, l := range got(p.api.Lag(bg))(t) {
			if l.Topic != seedTopic {
				continue
			}
			sel := fmt.Sprintf(`#pipeline-graph .edge[data-from="topic:%s"][data-to="consumer:%s"]`, l.Topic, l.Consumer)
			b.waitFor(t, "the edge to "+l.Consumer, `document.querySelector('`+sel+`')`)
		}
		b.waitFor(t, "the view node", fmt.Sprintf(`document.querySelector('#pipeline-graph [data-node="view:%s"]')`, seedView))
	})
}
