// Topics: every log topic with its partitions' offsets, sizes, rates and
// retention. Offsets count events, per partition, from 0.

import { h, replace, int, rate, bytes, sparkline, table, empty, badge } from "../dom.js";

export default {
  id: "topics",
  title: "Topics",
  icon: "≡",
  mount(root) {
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Topics"), h("p", {}, "Partitions, offsets and retention of the log.")),
      h("div", { id: "topics-list", class: "topics" }),
    );
  },
  update({ model, params, navigate }) {
    const topics = model.latest.topics;
    const want = params.get("topic");
    const list = document.getElementById("topics-list");
    if (!topics.length) {
      replace(list, h("div", { class: "card" }, empty(model.samples.length ? "No topics." : "Loading…")));
      return;
    }
    replace(
      list,
      topics
        .filter((t) => !want || t.name === want)
        .map((t) => {
          const r = model.topicRate(t.name);
          const trend = [];
          for (let i = 1; i < model.samples.length; i++) {
            const a = model.topic(t.name, model.samples[i - 1]);
            const b = model.topic(t.name, model.samples[i]);
            if (!a || !b) continue;
            const end = (x) => x.partitions.reduce((n, p) => n + p.end_offset, 0);
            trend.push(Math.max(0, (end(b) - end(a)) / ((model.samples[i].t - model.samples[i - 1].t) / 1000)));
          }
          return h(
            "section",
            { class: "card topic", "data-topic": t.name },
            h(
              "div",
              { class: "card-head" },
              h("h2", {}, t.name),
              kindBadge(t),
              h(
                "div",
                { class: "meta" },
                h("span", {}, h("b", { class: "topic-events", "data-value": t.events }, int(t.events)), " events"),
                h("span", {}, bytes(t.bytes)),
                h("span", {}, `${t.partitions.length} partitions`),
                h("span", {}, `retention ${duration(t.retention)}`),
                t.max_bytes ? h("span", {}, `max ${bytes(t.max_bytes)}/partition`) : null,
                h("span", {}, `${t.replicas} replica${t.replicas === 1 ? "" : "s"}`),
                h("span", {}, h("b", {}, rate(r)), " in"),
              ),
              h("div", { class: "spacer" }),
              sparkline(trend, { width: 140, height: 28 }),
              h("button", { class: "btn small", type: "button", onclick: () => navigate("messages", { topic: t.name, last: "20" }) }, "Browse messages"),
            ),
            t.refusal ? h("p", { class: "card-body note refusal" }, "Clients cannot publish here: " + t.refusal + ".") : null,
            h(
              "div",
              { class: "table-wrap", tabindex: 0, role: "region", "aria-label": `Partitions of ${t.name}` },
              table(
                [
                  { label: "Partition", cls: "num" },
                  { label: "First offset", cls: "num" },
                  { label: "Last offset", cls: "num" },
                  { label: "End offset", cls: "num" },
                  { label: "Events", cls: "num" },
                  { label: "Entries", cls: "num" },
                  { label: "Bytes", cls: "num" },
                  { label: "Rate", cls: "num" },
                  { label: "" },
                ],
                t.partitions.map((p) =>
                  h(
                    "tr",
                    { "data-partition": p.partition },
                    h("td", { class: "num" }, p.partition),
                    h("td", { class: "num first" }, p.first_offset < 0 ? "–" : int(p.first_offset)),
                    h("td", { class: "num last" }, p.last_offset < 0 ? "–" : int(p.last_offset)),
                    h("td", { class: "num end" }, int(p.end_offset)),
                    h("td", { class: "num" }, p.first_offset < 0 ? "0" : int(p.last_offset - p.first_offset + 1)),
                    h("td", { class: "num" }, int(p.entries)),
                    h("td", { class: "num" }, bytes(p.bytes)),
                    h("td", { class: "num" }, rate(model.partitionRate(t.name, p.partition))),
                    h(
                      "td",
                      {},
                      h("a", { href: `#/messages?topic=${encodeURIComponent(t.name)}&partition=${p.partition}&last=20` }, "messages"),
                    ),
                  ),
                ),
                { class: "partitions" },
              ),
            ),
          );
        }),
    );
  },
};

// kindBadge tells a view's output topic and a sink's dead-letter topic from
// a topic clients publish to.
function kindBadge(t) {
  if (t.kind === "view") return badge("view output", "speed");
  if (t.kind === "dead_letters") return badge("dead letters", "warn");
  return null;
}

// duration shortens a Go duration: "168h0m0s" → "168h (7d)".
function duration(d) {
  const short = String(d).replace(/(\d)h0m0s$/, "$1h").replace(/(\d)m0s$/, "$1m");
  const m = /^(\d+)h$/.exec(short);
  if (m && Number(m[1]) % 24 === 0) return `${short} (${Number(m[1]) / 24}d)`;
  return short;
}
