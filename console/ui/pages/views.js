// Views: query a view (group-by filters and a time range), see its rows and
// a chart of the window series with the layer of every point and the batch
// horizon marked: batch rows up to the horizon, speed rows after it.

import { getJSON, ApiError } from "../api.js";
import { h, s, replace, num, int, time, seconds, bytes, rate, badge, table, empty } from "../dom.js";
import { viewStats } from "../model.js";

const PALETTE = ["#4f46e5", "#0891b2", "#db2777", "#059669", "#d97706", "#7c3aed", "#dc2626", "#2563eb"];
const MAX_SERIES = 8;
const MAX_TABLE_ROWS = 500; // newest first; the chart and the API have them all

export default {
  id: "views",
  title: "Views",
  icon: "▦",
  mount(root, { params, model }) {
    this.want = params.get("view") || "";
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Views"), h("p", {}, "Windowed aggregates: batch rows up to the horizon, speed rows after it.")),
      h("section", { class: "card" }, h("div", { class: "card-body", id: "view-form-wrap" })),
      h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Layers"), h("div", { class: "meta", id: "view-layers-meta" })),
        h("div", { class: "layers", id: "view-layers" }),
      ),
      h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", { id: "chart-title" }, "Window series"), h("div", { class: "spacer" }), h("div", { class: "legend", id: "chart-legend" })),
        h("div", { class: "card-body", id: "view-chart" }, empty("Choose a view.")),
      ),
      h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", { id: "view-rows-title" }, "Rows"), h("div", { class: "meta", id: "view-meta" })),
        h("div", { class: "table-wrap", id: "view-rows", tabindex: 0, role: "region", "aria-labelledby": "view-rows-title" }),
      ),
    );
    this.formFor = null;
    this.buildForm(model, params);
  },
  // buildForm (re)builds the query form once the view list is known.
  buildForm(model, params) {
    const views = model.views;
    const wrap = document.getElementById("view-form-wrap");
    if (!wrap) return;
    if (!views) {
      replace(wrap, h("div", { class: "note" }, model.samples.length ? "The serving layer does not run in this process." : "Loading…"));
      return;
    }
    if (!views.length) {
      replace(wrap, h("div", { class: "note" }, "The pipeline defines no views."));
      return;
    }
    const name = params.get("view") || views[0].name;
    const v = views.find((x) => x.name === name) || views[0];
    if (this.formFor === v.name) return;
    this.formFor = v.name;
    const viewSel = h(
      "select",
      { name: "view", id: "view-select", onchange: () => navigateTo({ view: viewSel.value }) },
      views.map((x) => h("option", { value: x.name }, x.name)),
    );
    viewSel.value = v.name;
    const aggSel = h("select", { name: "agg", id: "view-agg" }, v.aggregates.map((a) => h("option", { value: a }, a)));
    aggSel.value = params.get("agg") || v.aggregates[0];
    aggSel.onchange = () => this.render();
    const form = h(
      "form",
      {
        class: "bar",
        id: "view-form",
        onsubmit: (e) => {
          e.preventDefault();
          const q = { view: v.name };
          for (const [k, val] of new FormData(form)) if (val !== "" && k !== "view") q[k] = String(val).trim();
          navigateTo(q);
        },
      },
      h("label", {}, "View", viewSel),
      v.group_by.map((g) => h("label", {}, g, h("input", { name: g, value: params.get(g) || "", placeholder: "any", class: "narrow group-filter" }))),
      h("label", {}, "From (window start ≥)", h("input", { name: "from", class: "time", value: params.get("from") || "", placeholder: "RFC 3339" })),
      h("label", {}, "To (window start <)", h("input", { name: "to", class: "time", value: params.get("to") || "", placeholder: "RFC 3339" })),
      h("label", {}, "Chart", aggSel),
      h("button", { class: "btn primary", type: "submit" }, "Query"),
    );
    replace(
      wrap,
      form,
      h(
        "div",
        { class: "note", id: "view-info" },
        `from topic ${v.from} · ${v.window} windows · group by ${v.group_by.join(", ") || "nothing"} · drift ${v.drift_windows} windows`,
      ),
    );
    const navigateTo = (q) => {
      const p = new URLSearchParams(q).toString();
      location.hash = "#/views" + (p ? "?" + p : "");
    };
  },
  async update({ model, params }) {
    this.buildForm(model, params);
    if (!this.formFor) return;
    const q = new URLSearchParams();
    const v = (model.views || []).find((x) => x.name === this.formFor);
    for (const [k, val] of params) if (k === "from" || k === "to" || (v && v.group_by.includes(k))) q.set(k, val);
    try {
      this.answer = await getJSON(`/v1/views/${encodeURIComponent(this.formFor)}${q.toString() ? "?" + q : ""}`);
      this.error = null;
    } catch (e) {
      this.error = e instanceof ApiError ? e : new ApiError(0, String(e));
    }
    this.view = v;
    this.renderLayers(model);
    this.render();
  },
  // renderLayers shows where each layer is with the view: the speed layer's
  // watermark and checkpoint, the batch layer's horizon and last run, what
  // the lake holds of the view's topic.
  renderLayers(model) {
    const out = document.getElementById("view-layers");
    const v = this.view;
    if (!out || !v) return;
    const st = model.latest.stats;
    const sp = viewStats(st, v.name);
    const bv = st.batch ? st.batch.views.find((x) => x.view === v.name) : undefined;
    const lake = st.batch ? st.batch.lake.find((x) => x.topic === v.from) : undefined;
    const now = Date.parse(st.time) || Date.now();
    const ago = (t) => (t ? `${time(t)} (${seconds(Math.max(0, (now - Date.parse(t)) / 1000))} ago)` : "–");
    const since = st.started ? ` since ${time(st.started).slice(11, 16)}` : "";
    const kv = (id, rows) =>
      h(
        "dl",
        { class: "kv", id },
        rows.flatMap(([k, val, attrs]) => [h("dt", {}, k), h("dd", attrs || {}, val)]),
      );
    replace(document.getElementById("view-layers-meta"), st.started ? `counters count from the process start, ${time(st.started)}` : "");
    replace(
      out,
      h(
        "div",
        { class: "layer-card" },
        h("h3", {}, "Speed layer"),
        sp
          ? kv("layer-speed", [
              ["Watermark", ago(sp.watermark), { class: "watermark", "data-value": sp.watermark || "" }],
              ["Open windows", int(sp.open_windows)],
              ["Events" + since, int(sp.events)],
              ["Late events" + since, int(sp.late_events), { class: "late", "data-value": sp.late_events }],
              ["Checkpoint", `${seconds(sp.checkpoint_age_seconds)} ago · ${bytes(sp.checkpoint_bytes)}`, { class: "checkpoint", "data-value": sp.checkpoint_age_seconds }],
            ])
          : h("p", { class: "note" }, "The speed layer does not run in this process."),
      ),
      h(
        "div",
        { class: "layer-card" },
        h("h3", {}, "Batch layer"),
        bv
          ? kv("layer-batch", [
              ["Horizon", ago(bv.horizon), { class: "horizon", "data-value": bv.horizon || "" }],
              ["Last success", ago(bv.last_success)],
              ["Failures" + since, int(bv.failures)],
              ["Last run", bv.rows_per_second ? rate(bv.rows_per_second) + " rows" : "–"],
            ])
          : h("p", { class: "note" }, "The batch layer does not run in this process."),
      ),
      h(
        "div",
        { class: "layer-card" },
        h("h3", {}, `Lake · ${v.from}`),
        lake
          ? kv("layer-lake", [
              ["Rows held", int(lake.rows_held), { class: "rows-held", "data-value": lake.rows_held }],
              ["Files held", int(lake.files_held), { class: "files-held", "data-value": lake.files_held }],
              ["Periods held", int(lake.periods_held), { class: "periods-held", "data-value": lake.periods_held }],
              ["Oldest period", time(lake.oldest_period), { class: "oldest-period", "data-value": lake.oldest_period || "" }],
              ["Rows written" + since, int(lake.rows)],
              ["Compactions" + since, int(lake.compactions)],
              ["Expired files" + since, int(lake.expired_files)],
            ])
          : h("p", { class: "note" }, "The lake writer does not run in this process."),
      ),
    );
  },
  render() {
    const rowsEl = document.getElementById("view-rows");
    if (!rowsEl) return;
    if (this.error) {
      replace(rowsEl, h("div", { class: "card-body error-text", id: "view-error" }, this.error.message));
      return;
    }
    const ans = this.answer;
    const v = this.view;
    if (!ans || !v) return;
    const agg = document.getElementById("view-agg").value;
    const rows = ans.rows || [];
    const batch = rows.filter((r) => r.layer === "batch").length;
    replace(
      document.getElementById("view-meta"),
      h("span", { id: "view-count", "data-value": rows.length }, `${rows.length} rows`),
      h("span", {}, `${batch} batch · ${rows.length - batch} speed`),
      rows.length > MAX_TABLE_ROWS ? h("span", {}, `newest ${MAX_TABLE_ROWS} shown`) : null,
      h("span", { id: "view-horizon", "data-value": ans.horizon || "" }, "horizon " + (ans.horizon ? time(ans.horizon) : "none yet")),
    );
    replace(document.getElementById("chart-title"), `${v.name} · ${agg}`);
    replace(
      document.getElementById("chart-legend"),
      h("span", {}, h("span", { class: "sw square" }), "batch"),
      h("span", {}, h("span", { class: "sw round" }), "speed"),
      h("span", {}, h("span", { class: "sw line" }), "horizon"),
    );
    replace(document.getElementById("view-chart"), rows.length ? chart(rows, v.group_by, agg, ans.horizon) : empty("No rows for this query."));
    // The window and its layer come first, so that however many aggregates
    // a view has, what a row is and where it comes from stay in sight.
    const cols = [...v.group_by, ...v.aggregates];
    replace(
      rowsEl,
      rows.length
        ? table(
            [{ label: "window" }, { label: "layer" }, ...cols.map((c) => ({ label: c, cls: v.aggregates.includes(c) ? "num" : "" }))],
            [...rows]
              .sort((a, b) => b.window_start.localeCompare(a.window_start) || groupKey(a, v.group_by).localeCompare(groupKey(b, v.group_by)))
              .slice(0, MAX_TABLE_ROWS)
              .map((r) =>
                h(
                  "tr",
                  { class: "view-row", "data-window-start": r.window_start, "data-group": groupKey(r, v.group_by), "data-layer": r.layer },
                  h("td", { class: "time col-window", "data-value": r.window_start, title: `${time(r.window_start)} → ${time(r.window_end)}` }, windowText(r.window_start, r.window_end)),
                  h("td", { class: "layer", title: r.final ? "final: the window is closed" : "open: the window still changes" }, badge(r.layer + (r.final ? "" : " · open"), r.layer)),
                  cols.map((c) =>
                    h(
                      "td",
                      { class: (v.aggregates.includes(c) ? "num " : "") + "col-" + c, "data-value": JSON.stringify(r[c]) },
                      typeof r[c] === "number" ? num(r[c]) : r[c] === null ? "null" : String(r[c]),
                    ),
                  ),
                ),
              ),
            { id: "view-table", class: "compact" },
          )
        : empty("No rows."),
    );
  },
};

// shortTime drops the seconds of a whole minute: windows mostly start on one.
function shortTime(t) {
  return time(t).replace(/^(\d{4}-\d\d-\d\d \d\d:\d\d):00$/, "$1");
}

// windowText shows a window compactly, so that the table fits a laptop's
// width: "15:04 → 15:05" today (UTC), "01-02 15:04 → 15:05" this year, the
// full date before; the end's date only when it differs. The cell's title
// has both times in full.
function windowText(start, end) {
  const today = new Date().toISOString().slice(0, 10);
  const day = (t) => {
    const s = shortTime(t);
    if (s.slice(0, 10) === today) return s.slice(11);
    return s.slice(0, 4) === today.slice(0, 4) ? s.slice(5) : s;
  };
  const sameDay = start.slice(0, 10) === end.slice(0, 10);
  return `${day(start)} → ${sameDay ? shortTime(end).slice(11) : day(end)}`;
}

function groupKey(row, groupBy) {
  return groupBy.map((g) => String(row[g])).join(" · ") || "all";
}

// chart draws the series of one aggregate over window time, one line per
// group, each point shaped by its layer, with the horizon as a line that
// splits the batch region from the speed region.
function chart(rows, groupBy, agg, horizon) {
  const W = 980;
  const H = 300;
  const L = 60;
  const R = 24;
  const T = 26;
  const B = 34;
  const starts = rows.map((r) => Date.parse(r.window_start));
  const ends = rows.map((r) => Date.parse(r.window_end));
  let x0 = Math.min(...starts);
  let x1 = Math.max(...ends);
  const hz = horizon ? Date.parse(horizon) : null;
  if (x1 === x0) x1 = x0 + 60_000;
  // A horizon just past the last window still belongs on the chart.
  if (hz !== null && hz > x1 && hz - x1 <= (x1 - x0) * 0.25) x1 = hz;
  const vals = rows.map((r) => r[agg]).filter((v) => typeof v === "number");
  let y0 = Math.min(0, ...vals);
  let y1 = Math.max(...vals, 0);
  if (y1 === y0) y1 = y0 + 1;
  y1 += (y1 - y0) * 0.08;
  const X = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);

  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, id: "view-chart-svg", role: "img", "aria-label": `${agg} per window` });
  // Regions: batch up to the horizon, speed after it.
  const hx = hz === null ? L : Math.min(Math.max(X(hz), L), W - R);
  if (hx > L) svg.append(s("rect", { class: "region batch", x: L, y: T, width: hx - L, height: H - T - B }), s("text", { class: "region-label batch", x: L + 8, y: H - B - 8 }, "BATCH"));
  if (hx < W - R) svg.append(s("rect", { class: "region speed", x: hx, y: T, width: W - R - hx, height: H - T - B }), s("text", { class: "region-label speed", x: W - R - 8, y: H - B - 8, "text-anchor": "end" }, "SPEED"));

  const axis = s("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    axis.append(s("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v) }), s("text", { x: L - 8, y: Y(v) + 4, "text-anchor": "end" }, short(v)));
  }
  // Time ticks on whole steps (a minute, five, an hour…), at most eight.
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440, 2880, 10080].map((m) => m * 60_000);
  const step = steps.find((st) => (x1 - x0) / st <= 8) || steps[steps.length - 1];
  for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
    axis.append(s("line", { x1: X(t), x2: X(t), y1: H - B, y2: H - B + 4 }), s("text", { x: X(t), y: H - 12, "text-anchor": "middle" }, tickLabel(t, x1 - x0)));
  }
  svg.append(axis);

  const groups = new Map();
  for (const r of rows) {
    const k = groupKey(r, groupBy);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const keys = [...groups.keys()]
    .sort((a, b) => total(groups.get(b), agg) - total(groups.get(a), agg) || a.localeCompare(b))
    .slice(0, MAX_SERIES);
  keys.forEach((k, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = groups.get(k).sort((a, b) => a.window_start.localeCompare(b.window_start)).filter((r) => typeof r[agg] === "number");
    const g = s("g", { class: "series", "data-group": k });
    const mid = (r) => (Date.parse(r.window_start) + Date.parse(r.window_end)) / 2;
    // A missing window breaks the line rather than bridging the gap.
    const d = pts.map((r, j) => (j && Date.parse(r.window_start) <= Date.parse(pts[j - 1].window_end) ? "L" : "M") + X(mid(r)).toFixed(1) + " " + Y(r[agg]).toFixed(1)).join(" ");
    g.append(s("path", { d, stroke: color }));
    for (const r of pts) {
      const x = X(mid(r));
      const y = Y(r[agg]);
      const attrs = {
        class: `point ${r.layer}${r.final ? "" : " open"}`,
        fill: color,
        stroke: r.layer === "batch" ? "#fff" : color,
        "data-window-start": r.window_start,
        "data-value": r[agg],
        "data-layer": r.layer,
        "data-group": k,
      };
      const shape = r.layer === "batch" ? s("rect", { ...attrs, x: x - 4.5, y: y - 4.5, width: 9, height: 9, rx: 1.5 }) : s("circle", { ...attrs, cx: x, cy: y, r: 4.5 });
      shape.append(s("title", {}, `${k} · ${time(r.window_start)} → ${time(r.window_end)}\n${agg} = ${num(r[agg])} (${r.layer}${r.final ? ", final" : ", open"})`));
      g.append(shape);
    }
    svg.append(g);
  });

  if (hz !== null && hz >= x0 && hz <= x1) {
    svg.append(
      s(
        "g",
        { class: "horizon", "data-horizon": horizon },
        s("line", { x1: hx, x2: hx, y1: T - 6, y2: H - B }),
        // Near the right edge the label goes left of the line.
        hx > W - R - 150
          ? s("text", { x: hx - 6, y: T - 10, "text-anchor": "end" }, "horizon " + time(horizon).slice(11))
          : s("text", { x: hx + 6, y: T - 10 }, "horizon " + time(horizon).slice(11)),
      ),
    );
  }
  const legend = h(
    "div",
    { class: "legend" },
    keys.map((k, i) => h("span", {}, swatch(PALETTE[i % PALETTE.length]), k)),
    groups.size > MAX_SERIES ? h("span", { class: "muted" }, `+${groups.size - MAX_SERIES} more groups (filter to see them)`) : null,
  );
  return h("div", {}, svg, legend);
}

function swatch(color) {
  return s("svg", { width: 10, height: 10, viewBox: "0 0 10 10", class: "swatch" }, s("rect", { width: 10, height: 10, rx: 2, fill: color }));
}

function total(rows, agg) {
  return rows.reduce((a, r) => a + (typeof r[agg] === "number" ? r[agg] : 0), 0);
}

function short(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

function tickLabel(t, span) {
  const iso = new Date(t).toISOString();
  if (span > 2 * 86400e3) return iso.slice(5, 10) + " " + iso.slice(11, 16);
  return iso.slice(11, 16);
}
