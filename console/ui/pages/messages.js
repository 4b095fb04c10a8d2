// Messages: the message browser over GET /v1/topics/{topic}/events. Start
// at the last N events (shown newest first), at an offset or at an ingest
// time (shown in log order); page on with the answer's "next" offsets;
// download the same selection as NDJSON. "From ingest time" selects by when
// events reached the log, the only time the log is ordered by; each event
// also shows its own event time.

import { request, getJSON, token } from "../api.js";
import { h, replace, int, time, prettyJSON, empty, badge } from "../dom.js";

// The parameters of the API this page passes through from its own URL.
const PASS = /^(topic|partition|from|last|limit|max_bytes|offset\.\d+)$/;

export default {
  id: "messages",
  title: "Messages",
  icon: "✉",
  mount(root, { params, model, navigate }) {
    const topicSel = h("select", { name: "topic", id: "msg-topic" });
    const partSel = h("select", { name: "partition", id: "msg-partition" });
    const mode = params.has("from") ? (/^\d+$/.test(params.get("from")) ? "offset" : "time") : "last";
    const valueInput = h("input", {
      name: "value",
      id: "msg-value",
      class: "time",
      value: params.get("from") || params.get("last") || "20",
      placeholder: "",
    });
    const limitInput = h("input", { name: "limit", id: "msg-limit", class: "narrow", type: "number", min: 1, max: 10000, value: params.get("limit") || "100" });
    const modes = [
      ["last", "Last N", "20"],
      ["offset", "From offset", "0"],
      ["time", "From ingest time", new Date(Date.now() - 3600e3).toISOString().replace(/\.\d+Z$/, "Z")],
    ];
    const setPlaceholder = (m) => {
      valueInput.placeholder = m === "time" ? "ingested at or after, RFC 3339" : m === "offset" ? "offset in each partition" : "events per partition";
    };
    setPlaceholder(mode);
    const seg = h(
      "div",
      { class: "seg", role: "radiogroup", "aria-label": "Start" },
      modes.map(([v, label, def]) =>
        h(
          "label",
          {},
          h("input", {
            type: "radio",
            name: "mode",
            value: v,
            checked: v === mode,
            onchange: () => {
              valueInput.value = def;
              setPlaceholder(v);
            },
          }),
          label,
        ),
      ),
    );
    const form = h(
      "form",
      {
        class: "bar",
        id: "msg-form",
        onsubmit: (e) => {
          e.preventDefault();
          const fd = new FormData(form);
          const q = { topic: fd.get("topic") };
          if (fd.get("partition") !== "") q.partition = fd.get("partition");
          const m = fd.get("mode");
          const v = String(fd.get("value")).trim();
          if (m === "last") q.last = v || "20";
          else q.from = v || "0";
          q.limit = fd.get("limit") || "100";
          navigate("messages", q);
        },
      },
      h("label", {}, "Topic", topicSel),
      h("label", {}, "Partition", partSel),
      h("div", { class: "field" }, h("span", { class: "field-label" }, "Start"), seg),
      h("label", {}, "Value", valueInput),
      h("label", {}, "Limit", limitInput),
      h("button", { class: "btn primary", type: "submit" }, "Load"),
    );
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Messages"), h("p", {}, "Browse a topic by partition and offset or by time.")),
      h("section", { class: "card" }, h("div", { class: "card-body" }, form)),
      h("section", { class: "card", id: "msg-results" }, empty(params.get("topic") ? "Loading…" : "Choose a topic and press Load.")),
    );
    this.fillSelects(model, params);
    if (params.get("topic")) load(params, navigate);
  },
  fillSelects(model, params) {
    const topicSel = document.getElementById("msg-topic");
    const partSel = document.getElementById("msg-partition");
    if (!topicSel) return;
    const names = model.latest.topics.map((t) => t.name);
    const want = params.get("topic") || topicSel.value || names[0] || "";
    if (names.length && names.join() !== topicSel.dataset.names) {
      replace(topicSel, names.map((n) => h("option", { value: n }, n)));
      topicSel.dataset.names = names.join();
      topicSel.value = want;
    }
    const t = model.latest.topics.find((t) => t.name === topicSel.value);
    const n = t ? t.partitions.length : 0;
    if (String(n) !== partSel.dataset.count) {
      replace(partSel, h("option", { value: "" }, "all"), Array.from({ length: n }, (_, i) => h("option", { value: String(i) }, String(i))));
      partSel.dataset.count = String(n);
      partSel.value = params.get("partition") || "";
      topicSel.onchange = () => this.fillSelects(model, new URLSearchParams({ topic: topicSel.value }));
    }
  },
  update({ model, params, navigate }) {
    this.fillSelects(model, params);
    // With no topic chosen yet, show the newest events of the first one.
    if (!params.get("topic") && model.latest.topics.length) {
      navigate("messages", { topic: model.latest.topics[0].name, last: "20", limit: "100" });
    }
  },
};

function apiPath(params, extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of params) if (PASS.test(k) && k !== "topic") q.set(k, v);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return `/v1/topics/${encodeURIComponent(params.get("topic"))}/events?${q}`;
}

async function load(params, navigate) {
  const out = document.getElementById("msg-results");
  let ans;
  try {
    ans = await getJSON(apiPath(params));
  } catch (e) {
    replace(out, h("div", { class: "card-body error-text", id: "msg-error" }, e.message));
    return;
  }
  const events = ans.events || [];
  const ndjson = apiPath(params, { format: "ndjson" });
  const download = h(
    "a",
    {
      class: "btn small",
      id: "msg-download",
      href: ndjson,
      download: params.get("topic") + ".ndjson",
      onclick: async (e) => {
        // With a token the link alone would answer 401: fetch with the
        // header and hand the browser the file.
        if (!token()) return;
        e.preventDefault();
        const blob = await (await request("GET", ndjson, { accept: "application/x-ndjson" })).blob();
        const a = h("a", { href: URL.createObjectURL(blob), download: params.get("topic") + ".ndjson" });
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      },
    },
    "Download NDJSON",
  );
  const expand = h(
    "button",
    {
      class: "btn small ghost",
      type: "button",
      onclick: () => {
        const all = out.querySelectorAll("details.message");
        const open = [...all].some((d) => !d.open);
        all.forEach((d) => (d.open = open));
      },
    },
    "Expand / collapse all",
  );
  // The last N are shown newest first (by when the log got them); a
  // selection from an offset or a time in log order, to read on from.
  const newestFirst = params.has("last");
  if (newestFirst) events.sort(newer);
  const next = ans.next || {};
  // A page ends at its limit, or earlier when its byte budget (max_bytes)
  // cut it: either way there may be more.
  const hasMore = ans.truncated || events.length >= Number(params.get("limit") || 100);
  const nextParams = () => {
    const q = { topic: params.get("topic"), limit: params.get("limit") || "100" };
    if (params.get("partition")) q.partition = params.get("partition");
    for (const [p, o] of Object.entries(next)) q["offset." + p] = String(o);
    return q;
  };
  replace(
    out,
    h(
      "div",
      { class: "card-head" },
      h("h2", {}, params.get("topic")),
      h(
        "div",
        { class: "meta" },
        h("span", { id: "msg-count", "data-value": events.length }, `${int(events.length)} events`),
        h("span", {}, params.get("partition") ? `partition ${params.get("partition")}` : "all partitions"),
        h("span", {}, describeStart(params)),
        h("span", { id: "msg-order" }, newestFirst ? "newest first" : "log order, oldest first"),
        ans.truncated ? h("span", { id: "msg-truncated", title: "The answer reached its byte budget (max_bytes); read on for the rest." }, "cut by size") : null,
      ),
      h("div", { class: "spacer" }),
      expand,
      download,
    ),
    events.length
      ? h(
          "div",
          { class: "messages", id: "msg-list" },
          h(
            "div",
            { class: "message-head", id: "msg-head" },
            h("span", {}, "Partition"),
            h("span", {}, "Offset"),
            h("span", {}, "Event time"),
            h("span", {}, "Ingested"),
            h("span", {}, "Event"),
          ),
          events.map((ev, i) =>
            h(
              "details",
              { class: "message", open: i === 0, "data-partition": ev.partition, "data-offset": ev.offset, "data-id": ev.id, "data-ingest": ev.ingest_time },
              h(
                "summary",
                {},
                badge("P" + ev.partition, "info"),
                h("span", { class: "mono offset" }, "#" + ev.offset),
                h("span", { class: "mono event-time", title: "event time" }, time(ev.time)),
                h("span", { class: "mono ingest-time", title: "ingest time" }, time(ev.ingest_time)),
                h("span", { class: "preview" }, JSON.stringify(ev.event)),
              ),
              h("div", { class: "meta" }, h("span", {}, "id ", h("code", {}, ev.id))),
              prettyJSON(ev.event),
            ),
          ),
        )
      : empty("No events here."),
    h(
      "div",
      { class: "pager" },
      h("span", {}, "Next offsets: ", h("code", { id: "msg-next" }, Object.entries(next).map(([p, o]) => `${p}:${o}`).join("  ") || "–")),
      h("div", { class: "spacer" }),
      h("button", { class: "btn small", type: "button", id: "msg-older", disabled: !hasMore, onclick: () => navigate("messages", nextParams()) }, "Next page →"),
    ),
  );
}

// newer orders events newest first: by ingest time, then the later offset.
function newer(a, b) {
  return micros(b.ingest_time) - micros(a.ingest_time) || a.partition - b.partition || b.offset - a.offset;
}

// micros reads an RFC 3339 time to the microsecond (Date keeps
// milliseconds; the API gives microseconds, trailing zeros left out).
function micros(t) {
  const m = /\.(\d+)Z$/.exec(t);
  return Date.parse(t) * 1000 + (m ? Number(m[1].padEnd(6, "0").slice(3, 6)) : 0);
}

function describeStart(params) {
  if (params.has("last")) return `last ${params.get("last")} per partition`;
  if (params.has("from")) {
    const f = params.get("from");
    return /^\d+$/.test(f) ? `from offset ${f}` : `ingested at or after ${f}`;
  }
  if ([...params.keys()].some((k) => k.startsWith("offset."))) return "continued";
  return "from the start";
}
