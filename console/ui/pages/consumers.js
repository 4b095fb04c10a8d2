// Consumers: every reader of the log (speed per view, the lake writer, each
// sink, each mirror) per partition, worst lag first, with its trend. Each
// has two positions: how far it has read, and what it has committed (what
// a restart resumes from). The lake writer commits when a file rolls and
// the speed layer at a checkpoint, so their committed lag is expected to
// be as large as that interval; the read lag says whether they keep up.

import { h, replace, int, rate, seconds, lagKind, sparkline, badge, table, empty } from "../dom.js";
import { worstFirst, summarize } from "../model.js";

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
        h(
          "p",
          {},
          "Read lag: events not read yet, and how long the oldest has waited since the log appended it. Committed lag: the same for what a restart would read again. Worst first.",
        ),
      ),
      h("div", { class: "stats", id: "consumer-stats" }),
      h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Lag by partition"), h("div", { class: "spacer" }), h("label", {}, "Consumer", select)),
        h("div", { class: "table-wrap", id: "lag-table", tabindex: 0, role: "region", "aria-label": "Lag by partition" }),
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

    replace(
      document.getElementById("consumer-stats"),
      summarize(all)
        .sort(worstFirst)
        .map((c) =>
          h(
            "div",
            { class: "card stat consumer-stat", "data-consumer": c.consumer },
            h("div", { class: "label" }, c.consumer),
            h("div", { class: "value " + lagKind(c.read_lag_seconds, c.read_lag) }, int(c.read_lag)),
            h(
              "div",
              { class: "sub" },
              `events unread · oldest ${seconds(c.read_lag_seconds)} · committed lag ${int(c.lag)} (${seconds(c.lag_seconds)}) · ${rate(model.consumerRate(c.consumer))}`,
            ),
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
              { label: "Part.", cls: "num" },
              { label: "Read / commit / end", cls: "num" },
              { label: "Read lag", cls: "num" },
              { label: "Committed lag", cls: "num" },
              { label: "Event-time lag", cls: "num" },
              { label: "Rate", cls: "num rate" },
              { label: "Trend", cls: "trend" },
            ],
            rows.map((l) => {
              const kind = lagKind(l.read_lag_seconds, l.read_lag);
              return h(
                "tr",
                { class: "lag-row", "data-consumer": l.consumer, "data-topic": l.topic, "data-partition": l.partition },
                h("td", { class: "name" }, l.consumer),
                h("td", {}, h("a", { href: "#/topics?topic=" + encodeURIComponent(l.topic) }, l.topic)),
                h("td", { class: "num" }, l.partition),
                h(
                  "td",
                  { class: "num offsets" },
                  h("span", { class: "read-offset", "data-value": l.read_offset, title: "read: the next event the consumer reads" }, int(l.read_offset)),
                  " / ",
                  h("span", { class: "offset", "data-value": l.offset, title: "committed: where a restart resumes" }, int(l.offset)),
                  " / ",
                  h("span", { class: "end", "data-value": l.end_offset, title: "end: the next offset the log gives" }, int(l.end_offset)),
                ),
                h(
                  "td",
                  { class: "num", title: "events not read yet; how long the oldest has waited since the log appended it" },
                  h("span", { class: "read-lag", "data-value": l.read_lag }, int(l.read_lag)),
                  " ",
                  h("span", { class: "read-lag-seconds", "data-value": l.read_lag_seconds }, badge(seconds(l.read_lag_seconds), kind)),
                ),
                h(
                  "td",
                  { class: "num", title: "events not committed yet; how long the oldest has waited" },
                  h("span", { class: "lag", "data-value": l.lag }, int(l.lag)),
                  " · ",
                  h("span", { class: "lag-seconds", "data-value": l.lag_seconds }, seconds(l.lag_seconds)),
                ),
                h(
                  "td",
                  { class: "num event-time-lag", "data-value": l.event_time_lag_seconds, title: "age of the oldest uncommitted event by its own event time" },
                  seconds(l.event_time_lag_seconds),
                ),
                h("td", { class: "num rate" }, rate(model.consumerRate(l.consumer, l.topic, l.partition))),
                h("td", { class: "trend" }, sparkline(model.lagTrend(l.consumer, l.topic, l.partition), { width: 90, kind: kind === "ok" ? "info" : kind })),
              );
            }),
            { id: "lag", class: "compact" },
          )
        : empty(model.samples.length ? "No consumers registered: no speed, lake or sink layer reads this log yet." : "Loading…"),
    );
  },
};
