package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeScript returns axe-core's browser script: LF_AXE, or where
// deploy/dev/test-tools.sh installs it (under LF_SERVICES_DIR, by default
// the repository's .services).
func axeScript(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("LF_AXE")}
	if dir := os.Getenv("LF_SERVICES_DIR"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "tools/node_modules/axe-core/axe.min.js"))
	}
	candidates = append(candidates, "../.services/tools/node_modules/axe-core/axe.min.js")
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if data, err := os.ReadFile(c); err == nil {
			return string(data)
		}
	}
	msg := "axe-core not found (deploy/dev/test-tools.sh installs it; or set LF_AXE to axe.min.js)"
	if os.Getenv("LF_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// consolePages are the console's pages with what shows each has loaded.
var consolePages = []struct{ route, loaded string }{
	{"overview", `#pipeline-graph [data-node="topic:metrics"]`},
	{"topics", `.topic[data-topic="metrics"] tr[data-partition]`},
	{"consumers", `#lag tr.lag-row`},
	{"messages?topic=metrics&last=5", `#msg-list details.message`},
	{"views?view=cpu_by_region", `#view-table tr.view-row`},
	{"jobs", `#recompute-view option`},
	{"sinks", `.sink[data-sink]`},
	{"sql?q=SELECT+region%2C+count(*)+AS+n+FROM+lake.metrics+GROUP+BY+region", `#sql-answer tr.sql-row`},
}

// signIn loads the console and gives it the read token, as a user would
// through the prompt, so that the pages show data.
func (b *browser) signIn(t *testing.T, p *process) {
	t.Helper()
	b.open(t, p, "overview")
	b.waitFor(t, "the token prompt", `document.getElementById("token-dialog").open`)
	b.eval(t, fmt.Sprintf(`(sessionStorage.setItem("lambdaflow.token", %q), location.reload(), true)`, p.token), new(bool))
	b.waitFor(t, "data after the token", `Number(document.body.dataset.samples) > 0 && !document.getElementById("token-dialog").open`)
}

// axe runs axe-core on the page as it is and returns its serious and
// critical violations, one line each with where they are.
func (b *browser) axe(t *testing.T, script string) []string {
	t.Helper()
	var loaded bool
	b.eval(t, `typeof axe !== "undefined"`, &loaded)
	if !loaded {
		if err := b.tryEval(script+";true", new(bool)); err != nil {
			t.Fatalf("loading axe-core: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical").flatMap(v =>
			v.nodes.map(n => v.impact + " " + v.id + ": " + n.target.join(" ") + " — " + n.failureSummary.replace(/\s+/g, " "))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe.run: %v", err)
	}
	return found
}

// viewport sets the window's size (CSS pixels).
func (b *browser) viewport(t *testing.T, width, height int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleAccessibility runs axe-core on every page of the console, with
// data, at a desktop and a small laptop width, and on the token prompt: no
// serious or critical violation (WCAG 2.x A and AA, and axe's best
// practices).
func TestConsoleAccessibility(t *testing.T) {
	p, _ := sharedPipeline(t)
	script := axeScript(t)
	b := newBrowser(t)
	t.Run("token prompt", func(t *testing.T) {
		b.open(t, p, "overview")
		b.waitFor(t, "the token prompt", `document.getElementById("token-dialog").open`)
		for _, v := range b.axe(t, script) {
			t.Error(v)
		}
	})
	b.signIn(t, p)
	for _, width := range []int64{1440, 1024} {
		b.viewport(t, width, 900)
		for _, pg := range consolePages {
			name := strings.SplitN(pg.route, "?", 2)[0]
			t.Run(fmt.Sprintf("%s at %d px", name, width), func(t *testing.T) {
				b.open(t, p, pg.route)
				b.waitFor(t, "the page's data", `document.querySelector('`+pg.loaded+`')`)
				for _, v := range b.axe(t, script) {
					t.Error(v)
				}
				if width == 1024 {
					b.screenshot(t, "a11y-"+name+"-1024")
				}
			})
		}
	}
}
