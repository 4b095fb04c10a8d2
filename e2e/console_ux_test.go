package e2e

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
)

// waitRefreshes waits until the console has refreshed n more times.
func (b *browser) waitRefreshes(t *testing.T, n int) {
	t.Helper()
	var samples int
	b.eval(t, `Number(document.body.dataset.samples)`, &samples)
	// Samples stop counting at the kept maximum; the header's clock moves
	// at every refresh either way.
	var clock string
	b.eval(t, `document.getElementById("updated").textContent`, &clock)
	for i := 0; i < n; i++ {
		b.waitFor(t, "a refresh", fmt.Sprintf(`Number(document.body.dataset.samples) > %d || document.getElementById("updated").textContent !== %q`, samples, clock))
		b.eval(t, `Number(document.body.dataset.samples)`, &samples)
		b.eval(t, `document.getElementById("updated").textContent`, &clock)
	}
}

// TestConsoleKeepsFocus: a control that has the keyboard focus keeps it
// while the page refreshes its numbers.
func TestConsoleKeepsFocus(t *testing.T) {
	p, f := sharedPipeline(t)
	b := newBrowser(t)
	b.signIn(t, p)
	for _, c := range []struct {
		route, loaded, control string
		need                   bool
	}{
		{"topics", `.topic[data-topic="metrics"] button`, `.topic[data-topic="metrics"] button`, true},
		{"topics", `.topic[data-topic="metrics"] tr[data-partition="1"] a`, `.topic[data-topic="metrics"] tr[data-partition="1"] a`, true},
		{"consumers", `#lag tr.lag-row`, `#consumer-filter`, true},
		{"sinks", `.sink[data-sink="warehouse"] button`, `.sink[data-sink="warehouse"] button`, f.sinks},
	} {
		if !c.need {
			continue
		}
		t.Run(c.route+" "+c.control, func(t *testing.T) {
			b.open(t, p, c.route)
			b.waitFor(t, "the control", `document.querySelector('`+c.loaded+`')`)
			// Mark the element itself: a rebuilt one would not carry it.
			b.eval(t, `(() => { const e = document.querySelector('`+c.control+`'); e.focus(); e.lfMark = "kept"; return document.activeElement === e; })()`, new(bool))
			b.waitRefreshes(t, 2)
			var state struct {
				Mark    string
				Focused bool
			}
			b.eval(t, `(() => { const e = document.querySelector('`+c.control+`'); return {Mark: e.lfMark || "", Focused: document.activeElement === e}; })()`, &state)
			if state.Mark != "kept" || !state.Focused {
				t.Errorf("after two refreshes: the element was kept %v, has the focus %v", state.Mark == "kept", state.Focused)
			}
		})
	}
}

// TestConsoleViewsLayout: the Views table fits the page at a desktop and a
// small laptop width, every row's layer in sight; the layers' state
// (watermark, checkpoint, horizon, what the lake holds) is the API's.
func TestConsoleViewsLayout(t *testing.T) {
	p, f := sharedPipeline(t)
	if !f.speed {
		t.Skip("no speed layer")
	}
	b := newBrowser(t)
	b.signIn(t, p)
	view := got(p.view(nil))(t)
	for _, width := range []int64{1440, 1024} {
		t.Run(fmt.Sprintf("%d px", width), func(t *testing.T) {
			b.viewport(t, width, 900)
			b.open(t, p, "views?view="+seedView)
			b.waitFor(t, "the rows", fmt.Sprintf(`document.querySelectorAll("#view-table tr.view-row").length >= %d`, len(view.Rows)))
			var fit struct {
				ScrollWidth, ClientWidth, WrapRight float64
				LayerRights                         []float64
				Headers                             []string
			}
			b.eval(t, `(() => {
				const wrap = document.getElementById("view-rows");
				const r = wrap.getBoundingClientRect();
				return {ScrollWidth: wrap.scrollWidth, ClientWidth: wrap.clientWidth, WrapRight: r.right,
					LayerRights: [...document.querySelectorAll("#view-table td.layer")].map(td => td.getBoundingClientRect().right),
					Headers: [...document.querySelectorAll("#view-table th")].map(th => th.textContent)};
			})()`, &fit)
			if fit.ScrollWidth > fit.ClientWidth {
				t.Errorf("the table is %v px wide in %v px: cut off", fit.ScrollWidth, fit.ClientWidth)
			}
			for _, right := range fit.LayerRights {
				if right > fit.WrapRight || right > float64(width) {
					t.Errorf("a layer cell ends at %v px, the table's box at %v px, the window at %d", right, fit.WrapRight, width)
					break
				}
			}
			if want := []string{"window", "layer", "region", "events", "avg_cpu", "max_cpu", "bytes", "hosts"}; !reflect.DeepEqual(fit.Headers, want) {
				t.Errorf("headers %q, want %q", fit.Headers, want)
			}
		})
	}

	t.Run("layers", func(t *testing.T) {
		b.open(t, p, "views?view="+seedView)
		b.waitFor(t, "the speed layer's state", `document.querySelector("#layer-speed .watermark")`)
		st := got(p.api.Stats(bg))(t)
		var shown struct {
			Watermark, Horizon string
			Oldest             string
			Late, RowsHeld     int64
			FilesHeld, Periods int
			Checkpoint         float64
		}
		b.waitFor(t, "the numbers", `document.querySelector("#layer-speed .watermark").dataset.value !== ""`)
		b.eval(t, `({Watermark: document.querySelector("#layer-speed .watermark").dataset.value,
			Late: Number(document.querySelector("#layer-speed .late").dataset.value),
			Checkpoint: Number(document.querySelector("#layer-speed .checkpoint").dataset.value),
			Horizon: (document.querySelector("#layer-batch .horizon") || {dataset: {value: "absent"}}).dataset.value,
			RowsHeld: Number((document.querySelector("#layer-lake .rows-held") || {dataset: {value: -1}}).dataset.value),
			FilesHeld: Number((document.querySelector("#layer-lake .files-held") || {dataset: {value: -1}}).dataset.value),
			Periods: Number((document.querySelector("#layer-lake .periods-held") || {dataset: {value: -1}}).dataset.value),
			Oldest: (document.querySelector("#layer-lake .oldest-period") || {dataset: {value: "absent"}}).dataset.value})`, &shown)
		vs := st.Views[0]
		if vs.Watermark == nil || shown.Watermark != vs.Watermark.Format(time.RFC3339Nano) || shown.Late != int64(vs.LateEvents) {
			t.Errorf("speed layer shows watermark %q, late %d; the API says %v, %d", shown.Watermark, shown.Late, vs.Watermark, vs.LateEvents)
		}
		if shown.Checkpoint < 0 || shown.Checkpoint > 60 {
			t.Errorf("checkpoint age %v s", shown.Checkpoint)
		}
		if f.batch {
			bv := st.Batch.Views[0]
			want := ""
			if bv.Horizon != nil {
				want = bv.Horizon.Format(time.RFC3339Nano)
			}
			if shown.Horizon != want {
				t.Errorf("batch layer shows horizon %q, the API says %q", shown.Horizon, want)
			}
			for _, l := range st.Batch.Lake {
				if l.Topic == seedTopic && (shown.RowsHeld != l.RowsHeld || shown.FilesHeld != l.FilesHeld || shown.Periods != l.PeriodsHeld) {
					t.Errorf("lake shows %d rows, %d files and %d periods held, the API says %d, %d and %d",
						shown.RowsHeld, shown.FilesHeld, shown.Periods, l.RowsHeld, l.FilesHeld, l.PeriodsHeld)
				}
				if l.Topic == seedTopic && (l.OldestPeriod == nil || shown.Oldest != l.OldestPeriod.Format(time.RFC3339Nano)) {
					t.Errorf("lake shows its oldest period %q, the API says %v", shown.Oldest, l.OldestPeriod)
				}
			}
		}
	})
}

// TestConsoleMessagesOrderAndTime: the last N are newest first under
// column headers; "from time" is the ingest time, as the API's and tail's.
func TestConsoleMessagesOrderAndTime(t *testing.T) {
	p, f := sharedPipeline(t)
	b := newBrowser(t)
	b.signIn(t, p)

	ans := got(p.api.Events(bg, seedTopic, client.Browse{Last: 3}))(t)
	want := append([]api.BrowsedEvent(nil), ans.Events...)
	sort.SliceStable(want, func(i, j int) bool {
		a, c := want[i], want[j]
		ta, _ := time.Parse(time.RFC3339Nano, a.IngestTime)
		tc, _ := time.Parse(time.RFC3339Nano, c.IngestTime)
		if !ta.Equal(tc) {
			return ta.After(tc)
		}
		if a.Partition != c.Partition {
			return a.Partition < c.Partition
		}
		return a.Offset > c.Offset
	})
	b.open(t, p, "messages?"+url.Values{"topic": {seedTopic}, "last": {"3"}}.Encode())
	b.waitFor(t, "the messages", fmt.Sprintf(`document.querySelectorAll("#msg-list details.message").length === %d`, len(want)))
	var shown struct {
		Keys    []string
		Headers []string
		Order   string
	}
	b.eval(t, `({Keys: [...document.querySelectorAll("#msg-list details.message")].map(d => d.dataset.partition + "/" + d.dataset.offset),
		Headers: [...document.querySelectorAll("#msg-head span")].map(s => s.textContent),
		Order: document.getElementById("msg-order").textContent})`, &shown)
	var wantKeys []string
	for _, e := range want {
		wantKeys = append(wantKeys, strconv.Itoa(e.Partition)+"/"+strconv.FormatInt(e.Offset, 10))
	}
	if !reflect.DeepEqual(shown.Keys, wantKeys) || shown.Order != "newest first" {
		t.Errorf("last 3 shown %v (%s), want %v newest first", shown.Keys, shown.Order, wantKeys)
	}
	if w := []string{"Partition", "Offset", "Event time", "Ingested", "Event"}; !reflect.DeepEqual(shown.Headers, w) {
		t.Errorf("headers %q, want %q", shown.Headers, w)
	}

	// From a time: what was ingested from then, in log order; the page says
	// it is the ingest time.
	part := f.events[0].partition()
	from := f.seededAt.Add(-time.Second).Format(time.RFC3339)
	byTime := got(p.api.Events(bg, seedTopic, client.Browse{Partition: &part, From: from}))(t)
	b.open(t, p, "messages?"+url.Values{"topic": {seedTopic}, "partition": {strconv.Itoa(part)}, "from": {from}}.Encode())
	b.waitFor(t, "the messages from the time", fmt.Sprintf(`document.querySelectorAll("#msg-list details.message").length === %d`, len(byTime.Events)))
	var meta string
	b.eval(t, `document.querySelector("#msg-results .meta").textContent`, &meta)
	if !strings.Contains(meta, "ingested at or after "+from) || !strings.Contains(meta, "log order, oldest first") {
		t.Errorf("the selection says %q; want it to name the ingest time and the order", meta)
	}
	var label string
	b.eval(t, `[...document.querySelectorAll('#msg-form .seg label')].map(l => l.textContent).join("|")`, &label)
	if label != "Last N|From offset|From ingest time" {
		t.Errorf("start choices %q", label)
	}
}

// TestConsoleCountersLabelled: counters of the process say since when; dead
// letters come from the log, so they survive restarts.
func TestConsoleCountersLabelled(t *testing.T) {
	p, f := sharedPipeline(t)
	b := newBrowser(t)
	b.signIn(t, p)
	st := got(p.api.Stats(bg))(t)
	since := " since " + st.Started.UTC().Format("15:04")
	b.open(t, p, "overview")
	b.waitFor(t, "the stats", `document.querySelector("#ov-late .sub")`)
	var late, ingest string
	b.eval(t, `document.querySelector("#ov-late .sub").textContent`, &late)
	b.eval(t, `document.querySelector("#ov-ingest .sub").textContent`, &ingest)
	if !strings.HasSuffix(late, since) || !strings.HasSuffix(ingest, since) {
		t.Errorf("late events %q and ingest %q: want both to end %q", late, ingest, since)
	}
	if !f.sinks {
		return
	}
	b.open(t, p, "sinks")
	b.waitFor(t, "the sinks", `document.querySelector('.sink[data-sink="archive"] .dead-letters')`)
	var shown []string
	b.eval(t, `[...document.querySelectorAll('.sink[data-sink] dt')].map(d => d.textContent)`, &shown)
	want := 0
	for _, s := range shown {
		if s == "Dead letters, all time" || s == "Rows written"+since {
			want++
		}
	}
	if want != 4 {
		t.Errorf("sink labels %q: want each sink's dead letters all time and rows written%s", shown, since)
	}
	var dead map[string]int64
	b.eval(t, `Object.fromEntries([...document.querySelectorAll('.sink[data-sink]')].map(s => [s.dataset.sink, Number(s.querySelector(".dead-letters").dataset.value)]))`, &dead)
	wantDead := map[string]int64{}
	for _, tp := range got(p.api.Topics(bg))(t) {
		if s, ok := strings.CutSuffix(tp.Name, "_dlq"); ok {
			wantDead[s] = tp.EndOffset()
		}
	}
	if !reflect.DeepEqual(dead, wantDead) {
		t.Errorf("dead letters shown %v, the dead-letter topics hold %v", dead, wantDead)
	}
}

// TestConsoleSQL: the SQL page runs the query in its address and shows
// exactly what POST /v1/sql answers, column names and types included; a
// table's button writes a first query for it; Ctrl+Enter runs what is
// typed, and an error shows the API's message with a caret under the
// place it names.
func TestConsoleSQL(t *testing.T) {
	p, f := sharedPipeline(t)
	if !f.lake {
		t.Skip("no lake writer in this process")
	}
	b := newBrowser(t)
	b.signIn(t, p)
	const q = "SELECT region, count(*) AS n, sum(bytes) AS bytes, NULL AS nothing FROM lake.metrics GROUP BY region ORDER BY region"
	b.open(t, p, "sql?"+url.Values{"q": {q}}.Encode())
	b.waitFor(t, "the answer", `document.querySelector("#sql-answer tr.sql-row")`)
	ans, err := p.api.SQL(bg, api.SQLRequest{SQL: q})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range ans.Columns {
		want = append(want, c.Name+" "+c.Type)
	}
	for _, r := range ans.Rows {
		var cells []string
		for _, v := range r {
			if v == nil {
				cells = append(cells, "NULL")
			} else {
				cells = append(cells, fmt.Sprint(v))
			}
		}
		want = append(want, strings.Join(cells, " | "))
	}
	var shown []string
	b.eval(t, `[...document.querySelectorAll("#sql-answer th span[title]")].map(s => s.firstChild.textContent + " " + s.title).concat(
		[...document.querySelectorAll("#sql-answer tr.sql-row")].map(r => [...r.cells].map(c => c.textContent).join(" | ")))`, &shown)
	if !reflect.DeepEqual(shown, want) || len(ans.Rows) != 2 {
		t.Fatalf("the page shows\n%s\nPOST /v1/sql answers\n%s", strings.Join(shown, "\n"), strings.Join(want, "\n"))
	}
	var count int
	b.eval(t, `Number(document.getElementById("sql-count").dataset.value)`, &count)
	if count != len(ans.Rows) {
		t.Fatalf("the page counts %d rows, the answer has %d", count, len(ans.Rows))
	}
	b.screenshot(t, "sql")

	b.waitFor(t, "the table buttons", `document.querySelector('button.sql-table[data-table="lake.metrics"]')`)
	var tables []string
	b.eval(t, `[...document.querySelectorAll("button.sql-table")].map(b => b.dataset.table)`, &tables)
	if want := []string{"lake.metrics", "views.cpu_by_region", "warehouse.metrics"}; !reflect.DeepEqual(tables, want) {
		t.Fatalf("the table buttons: %v, want %v", tables, want)
	}
	var written string
	b.eval(t, `(document.querySelector('button.sql-table[data-table="lake.metrics"]').click(), document.getElementById("sql-query").value)`, &written)
	if written != "SELECT * FROM lake.metrics LIMIT 100" {
		t.Fatalf("the table's button wrote %q", written)
	}

	b.eval(t, `(() => { const q = document.getElementById("sql-query"); q.value = "SELECT *\nFORM metrics";
		q.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", ctrlKey: true, bubbles: true})); return true; })()`, new(bool))
	b.waitFor(t, "the error", `document.getElementById("sql-error")`)
	var failed struct{ Message, Where, Address, Status string }
	b.eval(t, `({Message: document.getElementById("sql-error").textContent, Status: document.getElementById("sql-error").dataset.status,
		Where: document.getElementById("sql-where").textContent, Address: decodeURIComponent(location.hash)})`, &failed)
	if failed.Status != "400" || !strings.HasPrefix(failed.Message, "line 2, column 6: syntax error") || failed.Where != "FORM metrics\n     ^" ||
		failed.Address != "#/sql?q=SELECT+*\nFORM+metrics" {
		t.Fatalf("a query with a syntax error shows %+v", failed)
	}
	b.screenshot(t, "sql-error")
}
