// SQL: read-only queries over the lake, the views and the DuckDB sinks'
// tables (POST /v1/sql). The query is in the address (#/sql?q=…), so a
// query and its answer are a link; an error shows where in the query it is.

import { postJSON } from "../api.js";
import { h, replace, int, table, empty } from "../dom.js";

// Answers are capped here, below the server's sql.max_rows: a page of a
// thousand rows is as much as anyone reads in a browser.
const MAX_ROWS = 1000;

export default {
  id: "sql",
  title: "SQL",
  icon: "Σ",
  mount(root, { params, navigate }) {
    const q = params.get("q") || "";
    const input = h("textarea", {
      id: "sql-query",
      class: "sql-input mono",
      rows: 6,
      spellcheck: "false",
      "aria-label": "SQL query",
      placeholder: "SELECT page, count(*) FROM clicks GROUP BY page",
    });
    input.value = q;
    const run = () => {
      const text = input.value.trim();
      if (!text) return;
      // The same query again is not a new address: run it in place.
      if (text === (params.get("q") || "")) this.run(text);
      else navigate("sql", { q: text });
    };
    input.onkeydown = (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        run();
      }
    };
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "SQL"), h("p", {}, "Read-only queries over each topic's lake (schema lake), the views (schema views) and the DuckDB sinks' tables.")),
      h(
        "section",
        { class: "card" },
        h(
          "form",
          {
            class: "card-body sql-form",
            onsubmit: (e) => {
              e.preventDefault();
              run();
            },
          },
          input,
          h(
            "div",
            { class: "bar" },
            h("button", { class: "btn primary", type: "submit", id: "sql-run" }, "Run"),
            h("span", { class: "note" }, `Ctrl+Enter runs. One SELECT; answers of up to ${int(MAX_ROWS)} rows (add a LIMIT or aggregate).`),
          ),
          h("div", { class: "sql-tables", id: "sql-tables" }),
        ),
      ),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Answer"), h("div", { class: "meta", id: "sql-meta" })), h("div", { id: "sql-result" }, empty(q ? "Running…" : "Run a query to see its answer."))),
    );
    this.input = input;
    this.seq = 0;
    if (q) this.run(q);
  },
  update({ model }) {
    // The tables to start from: a click writes a first query for one.
    const out = document.getElementById("sql-tables");
    if (!out) return;
    const topics = (model.latest.topics || []).filter((t) => t.kind === "events").map((t) => "lake." + t.name);
    const views = (model.views || []).map((v) => "views." + v.name);
    // A DuckDB sink's tables are named after what it reads.
    const sinkTables = (model.sinks || []).filter((s) => s.type === "duckdb").flatMap((s) => (s.sources || []).map((src) => s.name + "." + src));
    const names = [...topics, ...views, ...sinkTables];
    replace(
      out,
      names.length ? h("span", { class: "note" }, "Tables:") : null,
      names.map((n) =>
        h(
          "button",
          {
            type: "button",
            class: "btn small ghost mono sql-table",
            "data-key": n,
            "data-table": n,
            onclick: () => {
              this.input.value = `SELECT * FROM ${n} LIMIT 100`;
              this.input.focus();
            },
          },
          n,
        ),
      ),
    );
  },
  async run(q) {
    const seq = ++this.seq;
    const out = document.getElementById("sql-result");
    const meta = document.getElementById("sql-meta");
    replace(meta, "running…");
    const t0 = performance.now();
    let ans;
    try {
      ans = await postJSON("/v1/sql", { sql: q, max_rows: MAX_ROWS });
    } catch (e) {
      if (seq !== this.seq) return;
      replace(meta, "failed");
      replace(out, failure(q, e));
      return;
    }
    if (seq !== this.seq) return; // a later run answers
    const ms = performance.now() - t0;
    const rows = ans.rows || [];
    const cols = ans.columns || [];
    replace(meta, h("span", { id: "sql-count", "data-value": rows.length }, `${int(rows.length)} ${rows.length === 1 ? "row" : "rows"} · ${int(ms)} ms`));
    replace(
      out,
      h(
        "div",
        { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Answer" },
        table(
          cols.map((c) => ({ label: h("span", { title: c.type }, c.name, h("span", { class: "sql-type" }, c.type)) })),
          rows.map((r) => h("tr", { class: "sql-row" }, r.map((v) => cell(v)))),
          { id: "sql-answer", class: "compact" },
        ),
        rows.length ? null : empty("No rows."),
      ),
    );
  },
};

// cell shows one value as the API gives it: null as NULL, numbers right
// aligned, lists and objects as JSON.
function cell(v) {
  if (v === null) return h("td", { class: "sql-null" }, "NULL");
  if (typeof v === "number") return h("td", { class: "num" }, String(v));
  if (typeof v === "object") return h("td", { class: "mono" }, JSON.stringify(v));
  return h("td", {}, String(v));
}

// failure shows a refused or failed query: the message, and when the API
// says where, the query's line with a caret under the column.
function failure(q, e) {
  const body = e.body || {};
  const parts = [h("p", { class: "error-text", id: "sql-error", "data-status": e.status }, e.message)];
  if (body.line > 0) {
    const line = q.split("\n")[body.line - 1] || "";
    const caret = " ".repeat(Math.max(0, (body.column || 1) - 1)) + "^";
    parts.push(h("pre", { class: "sql-caret mono", id: "sql-where" }, `${line}\n${caret}`));
  }
  if (body.limit) parts.push(h("p", { class: "note" }, "Limit: ", h("code", {}, body.limit)));
  return h("div", { class: "sql-failure" }, parts);
}
