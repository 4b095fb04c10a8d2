// Sinks: health and throughput of every sink, its consumer lag, and its
// dead letters, browsed and replayed.

import { getJSON, postJSON } from "../api.js";
import { h, replace, int, rate, seconds, time, badge, prettyJSON, table, empty, lagKind } from "../dom.js";
import { sinkStats, since, deadLetters } from "../model.js";

export default {
  id: "sinks",
  title: "Sinks",
  icon: "⇲",
  mount(root, { params }) {
    this.dlqFor = params.get("dlq") || "";
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Sinks"), h("p", {}, "Delivery to databases: health, rates, retries and dead letters.")),
      h("div", { class: "sink-grid", id: "sink-cards" }),
      h("section", { class: "card", id: "dlq", hidden: !this.dlqFor }),
    );
    if (this.dlqFor) this.loadDLQ(this.dlqFor);
  },
  update({ model }) {
    const out = document.getElementById("sink-cards");
    if (!model.sinks) {
      replace(out, h("div", { class: "card" }, empty(model.samples.length ? "Sinks do not run in this process." : "Loading…")));
      return;
    }
    if (!model.sinks.length) {
      replace(out, h("div", { class: "card" }, empty("The pipeline defines no sinks.")));
      return;
    }
    const st = model.latest.stats;
    replace(
      out,
      model.sinks.map((sk) => {
        const ss = sinkStats(st, sk.name) || { rows: 0, retries: 0, dead_letters: 0, batches: 0, batch_seconds: 0 };
        const lag = model.latest.lag.filter((l) => l.consumer === "sink." + sk.name);
        const lagEvents = lag.reduce((a, l) => a + l.read_lag, 0);
        const lagSec = lag.reduce((a, l) => Math.max(a, l.read_lag_seconds), 0);
        const count = ss.batches;
        const sum = ss.batch_seconds;
        // Dead letters are counted by the log, which keeps them across
        // restarts; the other numbers count from the process's start.
        const dead = deadLetters(model.latest, sk.name);
        const from = since(st);
        return h(
          "section",
          { class: "card sink", "data-sink": sk.name, "data-healthy": String(sk.healthy) },
          h(
            "div",
            { class: "card-head" },
            h("h2", {}, sk.name),
            badge(sk.type, "info"),
            h("div", { class: "spacer" }),
            sk.healthy ? badge("healthy", "ok", { class: "badge ok sink-health" }) : badge("failing", "bad", { class: "badge bad sink-health" }),
          ),
          h(
            "div",
            { class: "card-body" },
            sk.error ? h("p", { class: "error-text" }, sk.error) : null,
            h(
              "dl",
              { class: "kv" },
              h("dt", {}, "Sources"),
              h("dd", {}, sk.sources.join(", ")),
              h("dt", {}, "Rows written" + from),
              h("dd", { class: "rows-written", "data-value": ss.rows }, `${int(ss.rows)} · ${rate(model.statRate((x) => sinkStats(x, sk.name)?.rows))}`),
              h("dt", {}, "Retries" + from),
              h("dd", {}, int(ss.retries)),
              h("dt", {}, "Dead letters, all time"),
              h("dd", { class: "dead-letters", "data-value": dead }, `${int(dead)}${ss.dead_letters ? ` · ${int(ss.dead_letters)}${from}` : ""}`),
              h("dt", {}, "Batch latency (avg)" + from),
              h("dd", {}, count ? seconds(sum / count) : "–"),
              h("dt", {}, "Lag"),
              h("dd", {}, badge(`${int(lagEvents)} events · ${seconds(lagSec)}`, lagKind(lagSec, lagEvents))),
            ),
            h(
              "div",
              { class: "bar" },
              h("button", { class: "btn small", type: "button", onclick: () => this.loadDLQ(sk.name) }, "Dead letters"),
              h("button", { class: "btn small danger", type: "button", onclick: () => this.replay(sk.name) }, "Replay dead letters"),
            ),
          ),
        );
      }),
    );
  },
  async loadDLQ(name) {
    this.dlqFor = name;
    const out = document.getElementById("dlq");
    out.hidden = false;
    replace(out, h("div", { class: "card-head" }, h("h2", {}, `Dead letters of ${name}`)), empty("Loading…"));
    let ans;
    try {
      ans = await getJSON(`/v1/sinks/${encodeURIComponent(name)}/dlq?limit=200`);
    } catch (e) {
      replace(out, h("div", { class: "card-head" }, h("h2", {}, `Dead letters of ${name}`)), h("div", { class: "card-body error-text" }, e.message));
      return;
    }
    const dls = ans.dead_letters || [];
    replace(
      out,
      h(
        "div",
        { class: "card-head" },
        h("h2", {}, `Dead letters of ${name}`),
        h("div", { class: "meta" }, `${dls.length} not yet replayed (oldest first) · topic ${name}_dlq`),
        h("div", { class: "spacer" }),
        h("button", { class: "btn small danger", type: "button", disabled: !dls.length, onclick: () => this.replay(name) }, "Replay all"),
      ),
      h("div", { class: "note card-body", id: "replay-result" }),
      dls.length
        ? table(
            [{ label: "DLQ offset", cls: "num" }, { label: "Source" }, { label: "Partition", cls: "num" }, { label: "Offset", cls: "num" }, { label: "Error" }, { label: "Dead-lettered" }],
            dls.flatMap((d) => [
              h(
                "tr",
                { class: "dlq-row", "data-dlq-offset": d.dlq_offset },
                h("td", { class: "num" }, int(d.dlq_offset)),
                h("td", { class: "name" }, d.source),
                h("td", { class: "num" }, d.partition),
                h("td", { class: "num" }, int(d.offset)),
                h("td", { class: "error-text" }, d.error),
                h("td", { class: "mono" }, time(d.time)),
              ),
              h("tr", { class: "sub" }, h("td", { colspan: 6 }, d.record === null ? h("span", { class: "muted" }, "the log entry could not be decoded") : prettyJSON(d.record))),
            ]),
          )
        : empty("No dead letters."),
    );
  },
  async replay(name) {
    if (!confirm(`Replay every dead letter of ${name} through the sink again?`)) return;
    let msg;
    try {
      const ans = await postJSON(`/v1/sinks/${encodeURIComponent(name)}/dlq/replay`);
      msg = `Replayed ${ans.replayed}, failed again ${ans.failed}.`;
    } catch (e) {
      msg = "Replay failed: " + e.message;
    }
    await this.loadDLQ(name);
    const r = document.getElementById("replay-result");
    if (r) replace(r, msg);
  },
};
