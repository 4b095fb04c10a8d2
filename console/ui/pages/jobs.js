// Batch jobs: recompute a view from the lake now, and follow every job's
// progress (done/total, rows/s, ETA) and outcome.

import { postJSON } from "../api.js";
import { h, replace, int, rate, seconds, time, badge, table, empty } from "../dom.js";

const STATE_KIND = { queued: "muted", running: "info", succeeded: "ok", failed: "bad" };

export default {
  id: "jobs",
  title: "Batch jobs",
  icon: "↻",
  mount(root, { params }) {
    this.started = params.get("job") || "";
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Batch jobs"), h("p", {}, "Recomputation of views from the lake; scheduled runs and requested ones.")),
      h("section", { class: "card" }, h("div", { class: "card-body", id: "recompute-wrap" })),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "History"), h("div", { class: "meta", id: "jobs-meta" })), h("div", { class: "table-wrap", id: "jobs-table", tabindex: 0, role: "region", "aria-label": "Job history" })),
    );
    this.formBuilt = false;
  },
  update(ctx) {
    const { model } = ctx;
    this.buildForm(ctx);
    const jobs = model.jobs;
    const out = document.getElementById("jobs-table");
    if (!jobs) {
      replace(out, empty(model.samples.length ? "The batch layer does not run in this process." : "Loading…"));
      return;
    }
    const running = jobs.filter((j) => j.state === "running" || j.state === "queued").length;
    replace(document.getElementById("jobs-meta"), `${jobs.length} jobs · ${running} running or queued`);
    replace(
      out,
      jobs.length
        ? table(
            [
              { label: "Job" },
              { label: "View" },
              { label: "State" },
              { label: "Progress" },
              { label: "Rows", cls: "num" },
              { label: "Rows/s", cls: "num" },
              { label: "ETA", cls: "num" },
              { label: "Windows", cls: "num" },
              { label: "Horizon" },
              { label: "Queued" },
              { label: "Took", cls: "num" },
            ],
            jobs.flatMap((j) => {
              // A job that changed nothing is not shown as a success.
              const state = j.state === "succeeded" && j.nothing_to_do ? "nothing to do" : j.state;
              const kind = j.state === "succeeded" && j.nothing_to_do ? "muted" : STATE_KIND[j.state] || "muted";
              const pct = j.total > 0 ? Math.min(100, (100 * j.done) / j.total) : j.state === "succeeded" ? 100 : 0;
              const bar = h("div", {});
              bar.style.width = pct.toFixed(1) + "%";
              const took = j.started_at ? ((j.finished_at ? Date.parse(j.finished_at) : Date.now()) - Date.parse(j.started_at)) / 1000 : null;
              const row = h(
                "tr",
                { class: "job-row" + (j.id === this.started ? " highlight" : ""), "data-job": j.id, "data-state": j.state, "data-nothing": j.nothing_to_do ? "true" : "false" },
                h("td", { class: "mono job-id" }, j.id),
                h("td", { class: "name" }, j.view),
                h("td", {}, badge(state, kind, { class: "badge job-state " + kind }), j.trigger ? h("span", { class: "muted" }, " " + j.trigger) : null),
                h("td", {}, h("div", { class: "progress-cell" }, h("div", { class: "progress " + (j.nothing_to_do ? "nothing" : j.state) }, bar), h("span", { class: "muted" }, `${int(j.done)}/${int(j.total)}`))),
                h("td", { class: "num" }, int(j.rows)),
                h("td", { class: "num" }, j.rows_per_second ? rate(j.rows_per_second) : "–"),
                h("td", { class: "num" }, j.state === "running" && j.eta_seconds ? seconds(j.eta_seconds) : "–"),
                h("td", { class: "num" }, int(j.windows)),
                h("td", { class: "mono", title: j.horizon || "" }, j.horizon ? shortTime(j.horizon) : "–"),
                h("td", { class: "mono", title: j.queued_at }, shortTime(j.queued_at)),
                h("td", { class: "num" }, took === null ? "–" : seconds(took)),
              );
              const out = [row];
              if (j.error) out.push(h("tr", { class: "sub" }, h("td", { colspan: 11, class: "error-text" }, j.error)));
              if (j.note) out.push(h("tr", { class: "sub" }, h("td", { colspan: 11, class: "muted job-note" }, j.note)));
              if (j.lake) out.push(h("tr", { class: "sub" }, h("td", { colspan: 11, class: "muted job-lake" }, "Lake: " + j.lake)));
              return out;
            }),
            { id: "jobs", class: "compact" },
          )
        : empty("No jobs yet. Recompute a view above, or wait for its schedule."),
    );
  },
  buildForm({ model, refresh }) {
    const wrap = document.getElementById("recompute-wrap");
    if (!wrap || this.formBuilt || !model.views) {
      if (wrap && !model.views && !this.formBuilt) replace(wrap, h("div", { class: "note" }, "Loading views…"));
      return;
    }
    this.formBuilt = true;
    const viewSel = h("select", { name: "view", id: "recompute-view" }, model.views.map((v) => h("option", { value: v.name }, v.name)));
    const from = h("input", { name: "from", class: "time", placeholder: "all the lake holds" });
    const to = h("input", { name: "to", class: "time", placeholder: "RFC 3339" });
    const result = h("div", { class: "note", id: "recompute-result" });
    const button = h("button", { class: "btn primary", type: "submit", id: "recompute" }, "Recompute now");
    const form = h(
      "form",
      {
        class: "bar",
        onsubmit: async (e) => {
          e.preventDefault();
          const q = new URLSearchParams();
          if (from.value.trim()) q.set("from", from.value.trim());
          if (to.value.trim()) q.set("to", to.value.trim());
          button.disabled = true;
          try {
            const ans = await postJSON(`/v1/views/${encodeURIComponent(viewSel.value)}/recompute${q.toString() ? "?" + q : ""}`);
            this.started = ans.job;
            replace(result, "Started job ", h("code", { id: "recompute-job" }, ans.job), ".");
            await refresh();
          } catch (err) {
            replace(result, h("span", { class: "error-text" }, "Recompute failed: " + err.message));
          } finally {
            button.disabled = false;
          }
        },
      },
      h("label", {}, "View", viewSel),
      h("label", {}, "From (window start)", from),
      h("label", {}, "To", to),
      button,
    );
    replace(wrap, form, result);
  },
};

// shortTime shows today's times as the clock only; the title has the rest.
function shortTime(t) {
  const full = time(t);
  return full.slice(0, 10) === new Date().toISOString().slice(0, 10) ? full.slice(11) : full;
}
