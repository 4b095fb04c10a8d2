// The console's only way to the pipeline: the same HTTP API every client
// uses. Reads carry the bearer token the user entered (kept for the browser
// session only); a 401 asks for one.

const TOKEN_KEY = "lambdaflow.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// ApiError carries the status, so callers can tell "not wired" (404) from
// "needs a token" (401) from a failure.
export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    // The error's JSON body, when it had one: POST /v1/sql adds where in
    // the query the error is (line, column) and the limit it hit.
    this.body = body;
  }
}

let onUnauthorized = () => {};

// whenUnauthorized sets what happens when a read answers 401 (the token
// prompt); the failing call still rejects.
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export async function request(method, path, { accept = "application/json", json } = {}) {
  const headers = { Accept: accept };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const init = { method, headers, cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "lambdaflow is not reachable: " + e.message);
  }
  if (resp.status === 401) onUnauthorized();
  if (!resp.ok) {
    let msg = resp.statusText;
    let body = null;
    try {
      body = await resp.json();
      if (body && body.error) msg = body.error;
    } catch (_) {
      // not JSON: keep the status text
    }
    throw new ApiError(resp.status, msg, body);
  }
  return resp;
}

export async function getJSON(path) {
  return (await request("GET", path)).json();
}

export async function postJSON(path, json) {
  return (await request("POST", path, { json })).json();
}

// optional turns "this layer does not run here" (404) into null, so pages
// can say so instead of failing.
export async function optional(promise) {
  try {
    return await promise;
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}
