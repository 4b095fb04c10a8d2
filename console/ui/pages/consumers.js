// Consumers: every reader of the log (speed per view, the lake writer, each
// sink, each mirror) per partition, worst lag first, with its trend.

import { h, replace, int, rate, seconds, lagKind, sparkline, badge, table, empty } from "../dom.js";
import { worstFirst } from "../model.js";

export default {
  id: "consumers",
  title: "Consumers",
  icon: "⇶",
  mount(root, { params, navigate }) {
    const select = h("select", {
      id: "consumer-filter",
      onchange: (e) => navigate("consumers", e.target.value ? { consumer: e.target.value } : {}),
    });
    root.append(
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, "Consumers"),
        h("p", {}, "Lag in events behind the log end and the age of the oldest unconsumed event; worst first."),
      ),
      h("div", { class: "stats", id: "consumer-stats" }),
      h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Lag by partition"), h("div", { class: "spacer" }), h("label", {}, "Consumer", select)),
        h("div", { class: "table-wrap", id: "lag-table" }),
      ),
    );
    select.dataset.want = params.get("consumer") || "";
  },
  update({ model, params }) {
    const want = params.get("consumer") || "";
    const all = model.latest.lag;
    const names = [...new Set(all.map((l) => l.consumer))].sort();
    const select = document.getElementById("consumer-filter");
    replace(select, h("option", { value: "" }, "All consumers"), names.map((n) => h("option", { value: n }, n)));
    select.value = want;

    const byConsumer = new Map();
    for (const l of all) {
      const c = byConsumer.get(l.consumer) || { consumer: l.consumer, lag: 0, lag_seconds: 0, partitions: 0 };
      c.lag += l.lag;
      c.lag_seconds = Math.max(c.lag_seconds, l.lag_seconds);
      c.partitions++;
      byConsumer.set(l.consumer, c);
    }
    replace(
      document.getElementById("consumer-stats"),
      [...byConsumer.values()]
        .sort((a, b) => b.lag_seconds - a.lag_seconds || b.lag - a.lag || a.consumer.localeCompare(b.consumer))
        .map((c) =>
          h(
            "div",
            { class: "card stat consumer-stat", "data-consumer": c.consumer },
            h("div", { class: "label" }, c.consumer),
            h("div", { class: "value " + lagKind(c.lag_seconds, c.lag) }, int(c.lag)),
            h("div", { class: "sub" }, `events behind · oldest ${seconds(c.lag_seconds)} · ${rate(model.consumerRate(c.consumer))}`),
          ),
        ),
    );

    const rows = all.filter((l) => !want || l.consumer === want).sort(worstFirst);
    replace(
      document.getElementById("lag-table"),
      rows.length
        ? table(
            [
              { label: "Consumer" },
              { label: "Topic" },
              { label: "Partition", cls: "num" },
              { label: "Offset", cls: "num" },
              { label: "End offset", cls: "num" },
              { label: "Lag (events)", cls: "num" },
              { label: "Lag (seconds)", cls: "num" },
              { label: "Rate", cls: "num" },
              { label: "Trend" },
            ],
            rows.map((l) => {
              const kind = lagKind(l.lag_seconds, l.lag);
              return h(
                "tr",
                { class: "lag-row", "data-consumer": l.consumer, "data-topic": l.topic, "data-partition": l.partition },
                h("td", { class: "name" }, l.consumer),
                h("td", {}, h("a", { href: "#/topics?topic=" + encodeURIComponent(l.topic) }, l.topic)),
                h("td", { class: "num" }, l.partition),
                h("td", { class: "num offset", "data-value": l.offset }, int(l.offset)),
                h("td", { class: "num end", "data-value": l.end_offset }, int(l.end_offset)),
                h("td", { class: "num lag", "data-value": l.lag }, int(l.lag)),
                h("td", { class: "num lag-seconds", "data-value": l.lag_seconds }, badge(seconds(l.lag_seconds), kind)),
                h("td", { class: "num" }, rate(model.consumerRate(l.consumer, l.topic, l.partition))),
                h("td", {}, sparkline(model.lagTrend(l.consumer, l.topic, l.partition), { kind: kind === "ok" ? "info" : kind })),
              );
            }),
            { id: "lag" },
          )
        : empty(model.samples.length ? "No consumers registered: no speed, lake or sink layer reads this log yet." : "Loading…"),
    );
  },
};
