// Overview: the pipeline as a graph (ingest → log topics → speed / lake /
// sinks → views and targets) with throughput and lag on every edge, and the
// numbers an operator looks at first.

import { h, s, replace, int, rate, seconds, lagKind, sparkline, badge, table, empty } from "../dom.js";
import { worstFirst, viewStats, sinkStats, sum, since } from "../model.js";

const NODE_W = 196;
const NODE_H = 56;
const ROW_GAP = 22;
const COLS = [20, 300, 700, 1070];
const WIDTH = COLS[3] + NODE_W + 24;

export default {
  id: "overview",
  title: "Overview",
  icon: "◈",
  mount(root) {
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Overview"), h("p", {}, "Live state of the pipeline, refreshed every 2 seconds.")),
      h("div", { class: "stats", id: "ov-stats" }),
      h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Pipeline"), h("div", { class: "meta" }, "events per second and consumer lag on every edge")),
        h("div", { class: "card-body", id: "ov-graph" }),
      ),
      h(
        "div",
        { class: "grid-2" },
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Worst lag")), h("div", { id: "ov-lag" })),
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Ingest throughput"), h("div", { class: "meta", id: "ov-rate-meta" })), h("div", { class: "card-body", id: "ov-rate" })),
      ),
    );
  },
  update({ model, navigate }) {
    const st = model.latest.stats;
    const lag = [...model.latest.lag].sort(worstFirst);
    const worst = lag[0];
    const totalRate = model.rate((smp) => smp.topics.reduce((a, t) => a + t.partitions.reduce((b, p) => b + p.end_offset, 0), 0));
    const events = model.latest.topics.reduce((a, t) => a + t.events, 0);
    const late = sum(st.views, (v) => v.late_events);
    const rejects = st.ingest ? st.ingest.rejects : 0;
    const jobs = model.jobs || [];
    const running = jobs.filter((j) => j.state === "running" || j.state === "queued").length;
    const sinksDown = (model.sinks || []).filter((x) => !x.healthy).length;

    replace(
      document.getElementById("ov-stats"),
      stat("Ingest", rate(totalRate), `events/s into the log · ${int(rejects)} requests rejected${since(st)}`, "ov-ingest", rejects > 0 ? "warn" : ""),
      stat("Events in log", int(events), `${model.latest.topics.length} topics, views and dead letters included`),
      stat(
        "Worst read lag",
        worst ? seconds(worst.read_lag_seconds) : "–",
        worst ? `${worst.consumer} · ${int(worst.read_lag)} events unread` : "no consumers",
        "ov-worst",
        worst ? lagKind(worst.read_lag_seconds, worst.read_lag) : "",
      ),
      stat("Late events", int(late), `left to the batch layer by the speed layer${since(st)}`, "ov-late", late > 0 ? "warn" : ""),
      stat("Batch jobs", model.jobs ? (running ? `${running} running` : jobs.length ? jobs[0].state : "none") : "–", model.jobs ? `${jobs.length} in history` : "batch layer not running here"),
      stat(
        "Sinks",
        model.sinks ? (sinksDown ? `${sinksDown} down` : `${model.sinks.length} healthy`) : "–",
        model.sinks ? model.sinks.map((x) => x.name).join(", ") || "none configured" : "sinks not running here",
        "",
        model.sinks && sinksDown ? "bad" : model.sinks && model.sinks.length ? "ok" : "",
      ),
    );

    replace(document.getElementById("ov-graph"), graph(model, navigate));

    replace(
      document.getElementById("ov-lag"),
      lag.length
        ? table(
            [
              { label: "Consumer" },
              { label: "Topic" },
              { label: "Part.", cls: "num" },
              { label: "Unread", cls: "num" },
              { label: "Oldest unread", cls: "num" },
              { label: "Uncommitted", cls: "num" },
            ],
            lag.slice(0, 6).map((l) =>
              h(
                "tr",
                {},
                h("td", { class: "name" }, l.consumer),
                h("td", {}, l.topic),
                h("td", { class: "num" }, l.partition),
                h("td", { class: "num" }, int(l.read_lag)),
                h("td", { class: "num" }, badge(seconds(l.read_lag_seconds), lagKind(l.read_lag_seconds, l.read_lag))),
                h("td", { class: "num" }, `${int(l.lag)} · ${seconds(l.lag_seconds)}`),
              ),
            ),
          )
        : empty("No consumers registered yet."),
    );

    const series = [];
    for (let i = 1; i < model.samples.length; i++) {
      const a = model.samples[i - 1];
      const b = model.samples[i];
      const sum = (smp) => smp.topics.reduce((x, t) => x + t.partitions.reduce((y, p) => y + p.end_offset, 0), 0);
      series.push(Math.max(0, (sum(b) - sum(a)) / ((b.t - a.t) / 1000)));
    }
    replace(document.getElementById("ov-rate-meta"), `${rate(totalRate)} now · ${series.length ? rate(Math.max(...series)) : "–"} peak`);
    replace(document.getElementById("ov-rate"), series.length ? sparkline(series, { width: 560, height: 120 }) : empty("Collecting samples…"));
  },
};

function stat(label, value, sub, id, kind = "") {
  return h(
    "div",
    { class: "card stat", id: id || undefined },
    h("div", { class: "label" }, label),
    h("div", { class: "value " + kind }, value),
    h("div", { class: "sub" }, sub),
  );
}

// graph lays the pipeline out in four columns and draws it as SVG.
function graph(model, navigate) {
  const views = model.views || [];
  const sinks = model.sinks || [];
  // Topics clients publish to; the views' and dead letters' are drawn as
  // the views and the sinks.
  const topics = model.latest.topics.filter((t) => t.kind === "events");
  const st = model.latest.stats;

  const consumers = new Map(); // name → topics it reads, of those drawn
  const links = new Map(); // mirror.<site>.<topic> → the topic it pulls into
  const drawn = new Set(topics.map((t) => t.name));
  for (const l of model.latest.lag) {
    if (!drawn.has(l.topic)) continue; // e.g. a sink's replay of its dead letters
    if (l.consumer.startsWith("mirror.")) {
      // A link pulls another site's topic in: an input, drawn beside ingest.
      links.set(l.consumer, l.topic);
      continue;
    }
    if (!consumers.has(l.consumer)) consumers.set(l.consumer, new Set());
    consumers.get(l.consumer).add(l.topic);
  }
  const kindOf = (c) => (c.startsWith("speed.") ? "speed" : c === "lake" ? "lake" : c.startsWith("sink.") ? "sink" : "consumer");
  const order = { speed: 0, lake: 1, sink: 2, consumer: 3 };
  const consumerNames = [...consumers.keys()].sort((a, b) => order[kindOf(a)] - order[kindOf(b)] || a.localeCompare(b));

  const nodes = new Map();
  const add = (id, col, kind, title, sub, onclick) => nodes.set(id, { id, col, kind, title, sub, onclick });
  add("ingest", 0, "ingest", "Ingest", `${rate(model.statRate((x) => (x.ingest ? x.ingest.events : 0)))} acknowledged`, () => navigate("topics"));
  for (const [c, t] of links) {
    const site = c.slice("mirror.".length, c.length - t.length - 1);
    const lagSum = model.consumersOf(t).filter((x) => x.consumer === c).reduce((a, r) => a + r.lag, 0);
    add("link:" + c, 0, "link", "site " + site, `link · lag ${int(lagSum)}`, () => navigate("consumers", { consumer: c }));
  }
  for (const t of topics) {
    add("topic:" + t.name, 1, "topic", t.name, `${t.partitions.length} partitions · ${int(t.events)} events`, () => navigate("topics", { topic: t.name }));
  }
  for (const c of consumerNames) {
    const kind = kindOf(c);
    const label = kind === "speed" ? "speed layer" : kind === "lake" ? "lake writer" : kind === "sink" ? "sink runner" : "consumer";
    const rows = [...consumers.get(c)].flatMap((t) => model.consumersOf(t).filter((x) => x.consumer === c));
    const lagSum = rows.reduce((a, r) => a + r.read_lag, 0);
    add("consumer:" + c, 2, kind, c, `${label} · unread ${int(lagSum)}`, () => navigate("consumers", { consumer: c }));
  }
  for (const v of views) {
    const hz = v.horizon ? "horizon " + v.horizon.slice(11, 16) : "no batch run yet";
    add("view:" + v.name, 3, "view", v.name, `${v.window} · ${hz}`, () => navigate("views", { view: v.name }));
  }
  for (const x of sinks) {
    add("target:" + x.name, 3, "target", x.name, `${x.type} · ${x.healthy ? "healthy" : "failing"}`, () => navigate("sinks"));
  }

  const edges = [];
  for (const t of topics) {
    const r = model.topicRate(t.name);
    edges.push({ from: "ingest", to: "topic:" + t.name, kind: r ? "ok" : "", label: [strong(rate(r))] });
  }
  for (const [c, t] of links) {
    const sum = model.consumersOf(t).find((x) => x.consumer === c);
    edges.push({
      from: "link:" + c,
      to: "topic:" + t,
      // A link cut off knows no events behind, only since when it has not
      // heard from the other site: that age alone colours it.
      kind: lagKind(sum.lag_seconds, sum.lag || sum.lag_seconds),
      label: [strong(rate(model.consumerRate(c, t))), " · lag ", lagSpan(`${int(sum.lag)} (${seconds(sum.lag_seconds)})`)],
      title: `${c}: ${int(sum.lag)} events of the other site not pulled yet, the oldest ${seconds(sum.lag_seconds)} old`,
    });
  }
  for (const c of consumerNames) {
    for (const t of consumers.get(c)) {
      if (!nodes.has("topic:" + t)) continue;
      const sum = model.consumersOf(t).find((x) => x.consumer === c);
      const r = model.consumerRate(c, t);
      edges.push({
        from: "topic:" + t,
        to: "consumer:" + c,
        kind: lagKind(sum.read_lag_seconds, sum.read_lag),
        label: [strong(rate(r)), " · lag ", lagSpan(`${int(sum.read_lag)} (${seconds(sum.read_lag_seconds)})`)],
        title: `${c} on ${t}: ${int(sum.read_lag)} events unread, the oldest appended ${seconds(sum.read_lag_seconds)} ago; ${int(sum.lag)} uncommitted (${seconds(sum.lag_seconds)})`,
      });
    }
  }
  for (const v of views) {
    const sp = "consumer:speed." + v.name;
    const viewTopic = "topic:" + v.from;
    if (nodes.has(sp)) {
      const vs = viewStats(st, v.name);
      const late = vs ? vs.late_events : 0;
      edges.push({
        from: sp,
        to: "view:" + v.name,
        kind: late ? "warn" : "ok",
        label: [strong(rate(model.statRate((x) => viewStats(x, v.name)?.events))), ` · ${int(late)} late`],
      });
    }
    const lake = consumers.get("lake");
    if (lake && lake.has(v.from)) {
      const age = v.horizon ? (Date.now() - Date.parse(v.horizon)) / 1000 : null;
      edges.push({
        from: "consumer:lake",
        to: "view:" + v.name,
        kind: "batch",
        label: ["batch · ", strong(v.horizon ? "horizon " + seconds(age) + " ago" : "no run yet")],
      });
    }
    if (!nodes.has(sp) && !(lake && lake.has(v.from)) && nodes.has(viewTopic)) {
      edges.push({ from: viewTopic, to: "view:" + v.name, kind: "idle", label: ["no layer running"] });
    }
  }
  for (const x of sinks) {
    const c = "consumer:sink." + x.name;
    const ss = sinkStats(st, x.name);
    const dl = ss ? ss.dead_letters : 0;
    if (nodes.has(c)) {
      edges.push({
        from: c,
        to: "target:" + x.name,
        kind: !x.healthy ? "bad" : dl ? "warn" : "ok",
        label: [strong(rate(model.statRate((y) => sinkStats(y, x.name)?.rows))), ` · ${int(dl)} dead`],
      });
    }
  }

  // Rows per column; every column is centred on the tallest.
  const cols = [[], [], [], []];
  for (const n of nodes.values()) cols[n.col].push(n);
  const rows = Math.max(...cols.map((c) => c.length), 1);
  const height = rows * (NODE_H + ROW_GAP) + 40;
  for (const col of cols) {
    const top = 34 + ((rows - col.length) * (NODE_H + ROW_GAP)) / 2;
    col.forEach((n, i) => {
      n.x = COLS[n.col];
      n.y = top + i * (NODE_H + ROW_GAP);
    });
  }

  const svg = s("svg", { class: "graph", viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": "Pipeline graph", id: "pipeline-graph" });
  svg.append(
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0 0 L10 5 L0 10 z", class: "arrow" }))),
  );
  [links.size ? "INGEST & SITES" : "INGEST", "LOG TOPICS", "CONSUMERS", "VIEWS & TARGETS"].forEach((t, i) => svg.append(s("text", { x: COLS[i], y: 16, class: "col-title" }, t)));

  const edgeLayer = s("g", {});
  const labelLayer = s("g", {});
  for (const e of edges) {
    const a = nodes.get(e.from);
    const b = nodes.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    const g = s("g", { class: "edge " + (e.kind || ""), "data-from": e.from, "data-to": e.to });
    g.append(s("path", { d: `M${x1} ${y1} C${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)" }));
    if (e.title) g.append(s("title", {}, e.title));
    edgeLayer.append(g);
    const text = s("text", { x: mx, y: (y1 + y2) / 2 + 4, "text-anchor": "middle" }, ...e.label);
    const w = e.label.reduce((n, part) => n + String(part.textContent ?? part).length, 0) * 6.2 + 14;
    const lg = s("g", { class: "edge label-wrap " + (e.kind || "") }, s("g", { class: "label" }, s("rect", { x: mx - w / 2, y: (y1 + y2) / 2 - 10, width: w, height: 20, rx: 10 }), text));
    labelLayer.append(lg);
  }
  svg.append(edgeLayer);

  for (const n of nodes.values()) {
    const g = s("g", { class: "node " + n.kind + (n.onclick ? " clickable" : ""), transform: `translate(${n.x} ${n.y})`, "data-node": n.id });
    g.append(
      s("rect", { width: NODE_W, height: NODE_H, rx: 9 }),
      s("text", { x: 12, y: 17, class: "kind" }, kindLabel(n.kind)),
      s("text", { x: 12, y: 33, class: "title" }, clip(n.title, 24)),
      s("text", { x: 12, y: 48, class: "sub" }, clip(n.sub, 30)),
      s("title", {}, `${n.title}: ${n.sub}`),
    );
    if (n.onclick) g.onclick = n.onclick;
    svg.append(g);
  }
  svg.append(labelLayer);
  return svg;
}

function kindLabel(kind) {
  return { ingest: "HTTP", link: "OTHER SITE", topic: "TOPIC", speed: "SPEED", lake: "BATCH · LAKE", sink: "SINK", consumer: "CONSUMER", view: "VIEW", target: "TARGET" }[kind] || kind.toUpperCase();
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function strong(text) {
  return s("tspan", { class: "strong" }, text);
}

function lagSpan(text) {
  return s("tspan", { class: "lag" }, text);
}
