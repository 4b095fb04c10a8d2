// The console's shell: the refresh loop, the router, the header and the
// token prompt. Pages live in pages/*.js; each has mount (build the page
// once) and update (show the latest samples), and may fetch what only it
// needs.

import { getJSON, optional, setToken, token, whenUnauthorized } from "./api.js";
import { h, replace, clock, badge } from "./dom.js";
import { Model, EMPTY_STATS } from "./model.js";
import overview from "./pages/overview.js";
import topics from "./pages/topics.js";
import consumers from "./pages/consumers.js";
import messages from "./pages/messages.js";
import views from "./pages/views.js";
import jobs from "./pages/jobs.js";
import sinks from "./pages/sinks.js";
import cluster from "./pages/cluster.js";
import sql from "./pages/sql.js";

const REFRESH_MS = 2000;
const PAGES = [overview, topics, consumers, messages, views, jobs, sinks, sql, cluster];

const model = new Model();
const ui = {
  page: null,
  params: new URLSearchParams(),
  paused: sessionStorage.getItem("lambdaflow.paused") === "1",
  timer: null,
  inFlight: false,
};

// --- the refresh loop -------------------------------------------------------

async function refresh() {
  if (ui.inFlight) return;
  ui.inFlight = true;
  const t = Date.now();
  try {
    const [topicsAns, lagAns, stats, viewsAns, jobsAns, sinksAns, ready] = await Promise.all([
      getJSON("/v1/topics"),
      getJSON("/v1/lag"),
      optional(getJSON("/v1/stats")),
      optional(getJSON("/v1/views")),
      optional(getJSON("/v1/jobs")),
      optional(getJSON("/v1/sinks")),
      readiness(),
    ]);
    model.push({
      t,
      topics: topicsAns.topics || [],
      lag: lagAns.consumers || [],
      stats: stats || EMPTY_STATS,
    });
    model.views = viewsAns ? viewsAns.views : null;
    model.jobs = jobsAns ? jobsAns.jobs : null;
    model.sinks = sinksAns ? sinksAns.sinks : null;
    model.ready = ready;
    model.error = null;
  } catch (e) {
    model.error = e;
  } finally {
    ui.inFlight = false;
  }
  document.body.dataset.samples = String(model.samples.length);
  renderHeader();
  if (ui.page) {
    try {
      await ui.page.update(ctx());
    } catch (e) {
      console.error(e);
    }
  }
}

async function readiness() {
  try {
    const resp = await fetch("/readyz", { cache: "no-store" });
    return await resp.json();
  } catch (e) {
    return { status: "unreachable" };
  }
}

function schedule() {
  clearTimeout(ui.timer);
  if (ui.paused || document.hidden) return;
  ui.timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, REFRESH_MS);
}

// --- routing ----------------------------------------------------------------

function ctx() {
  return { model, params: ui.params, navigate, refresh: refreshNow };
}

async function refreshNow() {
  await refresh();
  schedule();
}

// navigate goes to a page with parameters, e.g. navigate("messages", {topic: "metrics"}).
function navigate(id, params = {}) {
  const q = new URLSearchParams(params).toString();
  location.hash = "#/" + id + (q ? "?" + q : "");
}

function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const page = PAGES.find((p) => p.id === path) || PAGES[0];
  ui.params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page.id);
  const root = document.getElementById("page");
  // Pages rebuild from their parameters, so every state is a link.
  ui.page = page;
  replace(root);
  root.dataset.page = page.id;
  page.mount(root, ctx());
  document.title = page.title + " · Lambdaflow";
  page.update(ctx());
}

// --- header -----------------------------------------------------------------

function renderHeader() {
  const name = model.latest.stats.pipeline;
  replace(document.getElementById("pipeline-name"), name || "");
  const r = model.ready;
  let status;
  if (model.error && model.error.status === 401) status = badge("token required", "warn");
  else if (model.error) status = badge("unreachable", "bad", { title: model.error.message });
  else if (!r) status = badge("…", "muted");
  else if (r.status === "ready") status = badge("ready", "ok", { id: "ready" });
  else status = badge("not ready: " + (r.parts || []).join(", "), "bad", { id: "ready", title: JSON.stringify(r.down || {}) });
  replace(document.getElementById("status"), status);
  const last = model.samples.length ? clock(new Date(model.latest.t)) : "never";
  replace(document.getElementById("updated"), ui.paused ? "paused · " + last : "updated " + last);
  const btn = document.getElementById("pause");
  btn.textContent = ui.paused ? "Resume" : "Pause";
  btn.classList.toggle("paused", ui.paused);
  btn.setAttribute("aria-pressed", String(ui.paused));
  document.getElementById("signout").hidden = !token();
  const err = document.getElementById("error");
  if (model.error && model.error.status !== 401) {
    err.hidden = false;
    replace(err, "Refresh failed: " + model.error.message);
  } else {
    err.hidden = true;
  }
}

// --- the token prompt -------------------------------------------------------

function askToken() {
  const dlg = document.getElementById("token-dialog");
  if (dlg.open) return;
  document.getElementById("token-input").value = "";
  dlg.showModal();
}

function setupToken() {
  whenUnauthorized(askToken);
  const dlg = document.getElementById("token-dialog");
  document.getElementById("token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setToken(document.getElementById("token-input").value.trim());
    dlg.close();
    await refreshNow();
  });
  document.getElementById("signout").addEventListener("click", async () => {
    setToken("");
    await refreshNow();
  });
}

// --- start ------------------------------------------------------------------

function start() {
  const nav = document.querySelector("nav");
  for (const p of PAGES) {
    nav.append(h("a", { href: "#/" + p.id, "data-page": p.id }, h("span", { class: "icon", "aria-hidden": "true" }, p.icon), p.title));
  }
  setupToken();
  document.getElementById("pause").addEventListener("click", () => {
    ui.paused = !ui.paused;
    sessionStorage.setItem("lambdaflow.paused", ui.paused ? "1" : "0");
    renderHeader();
    if (!ui.paused) refreshNow();
    else clearTimeout(ui.timer);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !ui.paused) refreshNow();
  });
  window.addEventListener("hashchange", route);
  route();
  refreshNow();
}

start();
