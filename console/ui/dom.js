// DOM building and number formatting. Everything shown is built with
// createElement and textContent, never innerHTML: event payloads are user
// data. Pages rebuild what they show on every refresh; replace() then
// updates the elements already there in place (morph) instead of swapping
// them, so that keyboard focus, a text selection or an open select survive
// the refresh.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    // Handlers are properties, not listeners, so morph can move the new
    // ones onto the elements it keeps.
    if (k.startsWith("on")) el[k] = v;
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" && "value" in el) el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h builds an HTML element: h("td", {class: "num"}, "42").
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s builds an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// replace makes el's children the given ones: elements already there of
// the same tag (and key) are updated in place, the rest created or removed.
export function replace(el, ...children) {
  const want = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  morphChildren(
    el,
    want.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))),
  );
  return el;
}

// The event handler properties morph carries over.
const HANDLERS = ["onclick", "onchange", "onsubmit", "oninput", "onkeydown"];

// key tells which old element a new one continues: same node type and tag,
// and the same data-key when it has one.
function sameKind(a, b) {
  return (
    a.nodeType === b.nodeType &&
    a.nodeName === b.nodeName &&
    (a.nodeType !== 1 || (a.getAttribute("data-key") || "") === (b.getAttribute("data-key") || ""))
  );
}

function morphChildren(parent, want) {
  const have = [...parent.childNodes];
  want.forEach((n, i) => {
    const o = have[i];
    if (o === n) return;
    if (o && sameKind(o, n)) morph(o, n);
    else if (o) parent.replaceChild(n, o);
    else parent.appendChild(n);
  });
  for (let i = have.length - 1; i >= want.length; i--) have[i].remove();
}

// morph makes the element (or text node) from look like to, keeping from.
function morph(from, to) {
  if (from.nodeType !== 1) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  for (const a of [...from.attributes]) if (!to.hasAttribute(a.name)) from.removeAttribute(a.name);
  for (const a of to.attributes) if (from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
  for (const k of HANDLERS) if (from[k] !== to[k]) from[k] = to[k];
  morphChildren(from, [...to.childNodes]);
  // Form state lives in properties; what the user is editing stays theirs.
  if ((from.tagName === "INPUT" || from.tagName === "SELECT") && from !== document.activeElement && from.value !== to.value) {
    from.value = to.value;
  }
  if (from.tagName === "INPUT" && from.checked !== to.checked) from.checked = to.checked;
}

const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const rateFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const numFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });

export function int(n) {
  return n === null || n === undefined || Number.isNaN(n) ? "–" : intFmt.format(n);
}

export function num(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n !== "number") return String(n);
  return numFmt.format(n);
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined || Number.isNaN(perSecond)) return "–";
  if (perSecond >= 1e6) return rateFmt.format(perSecond / 1e6) + "M/s";
  if (perSecond >= 1e4) return rateFmt.format(perSecond / 1e3) + "k/s";
  return rateFmt.format(perSecond) + "/s";
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? intFmt.format(n) : rateFmt.format(n)) + " " + units[i];
}

// seconds shows a duration the way an operator reads lag: "0.4 s", "12 s",
// "3m 12s", "2h 05m", "3d 4h".
export function seconds(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return "–";
  if (sec > 0 && sec < 1) return Math.max(1, Math.round(sec * 1000)) + " ms";
  if (sec < 10) return rateFmt.format(sec) + " s";
  // Round once, up front, so 59.6 s reads "1m 00s", never "60 s" or "0m 60s".
  const whole = Math.round(sec);
  if (whole < 60) return whole + " s";
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m ${String(whole % 60).padStart(2, "0")}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

// time shows an RFC 3339 time in UTC, to the second: "2026-01-02 15:04:05".
export function time(t) {
  if (!t) return "–";
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, "");
}

export function clock(d) {
  return d.toISOString().slice(11, 19);
}

// badge is a small coloured label; kind is ok, warn, bad, info or muted.
export function badge(text, kind = "muted", attrs = {}) {
  return h("span", { class: "badge " + kind, ...attrs }, text);
}

// lagKind grades lag in seconds for colour.
export function lagKind(sec, events) {
  if (!events) return "ok";
  if (sec < 5) return "ok";
  if (sec < 60) return "warn";
  return "bad";
}

// sparkline draws values as a small line; the last value gets a dot.
export function sparkline(values, { width = 120, height = 26, kind = "info" } = {}) {
  const svg = s("svg", { class: "spark " + kind, width, height, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true" });
  if (!values.length) return svg;
  const max = Math.max(...values, 1);
  const step = values.length > 1 ? (width - 4) / (values.length - 1) : 0;
  const pts = values.map((v, i) => [2 + i * step, height - 3 - (v / max) * (height - 6)]);
  const d = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
  svg.append(
    s("path", { d: d + ` L${pts[pts.length - 1][0].toFixed(1)} ${height - 1} L2 ${height - 1} Z`, class: "area" }),
    s("path", { d, class: "line" }),
    s("circle", { cx: pts[pts.length - 1][0], cy: pts[pts.length - 1][1], r: 2.2, class: "dot" }),
  );
  return svg;
}

// prettyJSON renders a value as indented, coloured JSON.
export function prettyJSON(value) {
  const out = h("pre", { class: "json" });
  const walk = (v, indent) => {
    const pad = "  ".repeat(indent);
    if (v === null) return out.append(h("span", { class: "j-null" }, "null"));
    if (Array.isArray(v)) {
      if (!v.length) return out.append("[]");
      out.append("[\n");
      v.forEach((x, i) => {
        out.append(pad + "  ");
        walk(x, indent + 1);
        out.append(i < v.length - 1 ? ",\n" : "\n");
      });
      return out.append(pad + "]");
    }
    if (typeof v === "object") {
      const keys = Object.keys(v);
      if (!keys.length) return out.append("{}");
      out.append("{\n");
      keys.forEach((k, i) => {
        out.append(pad + "  ", h("span", { class: "j-key" }, JSON.stringify(k)), ": ");
        walk(v[k], indent + 1);
        out.append(i < keys.length - 1 ? ",\n" : "\n");
      });
      return out.append(pad + "}");
    }
    const cls = typeof v === "string" ? "j-str" : typeof v === "number" ? "j-num" : "j-bool";
    out.append(h("span", { class: cls }, JSON.stringify(v)));
  };
  walk(value, 0);
  return out;
}

// table builds a table from column definitions {label, cls} and row cells.
export function table(columns, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.cls }, c.label)))),
    h("tbody", {}, rows),
  );
}

export function empty(text) {
  return h("div", { class: "empty" }, text);
}
