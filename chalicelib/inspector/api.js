// The public API, called at ../api/<service>/v1 relative to this page: same origin, any base path.
// Requests are signed with the user's credentials when they gave some (kept in sessionStorage, this
// tab only), anonymous otherwise. Artifacts are read without headers (a bewit when signed).
import { bewitUrl, hawkHeader } from "./hawk.js";

const STORE = "taskqueue.inspector.credentials";
export const ROOT = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message.split("\n\n---")[0] : `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || String(status);
  }
}

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

export function setCredentials(value) {
  if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
  else sessionStorage.removeItem(STORE);
}

const enc = encodeURIComponent;

export function apiUrl(service, path, query = {}) {
  const url = new URL(`api/${service}/v1${path}`, ROOT);
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  return url;
}

// A signed GET refused for scopes is tried once more without credentials: where the deployment
// lets anonymous callers read (the embedded stack does), credentials made for actions only still
// let the user see everything.
export async function call(service, method, path, { query, body } = {}) {
  const creds = credentials();
  try {
    return await send(service, method, path, query, body, creds);
  } catch (err) {
    if (!(creds && method === "GET" && err.status === 403)) throw err;
    return send(service, method, path, query, body, null);
  }
}

async function send(service, method, path, query, body, creds) {
  const url = apiUrl(service, path, query);
  const headers = { Accept: "application/json" };
  if (creds) headers.Authorization = await hawkHeader(creds, method, url);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text };
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Every page of a listing (`key` holds the items), at most `maxPages` of them.
export async function all(service, path, key, query = {}, maxPages = 20) {
  const items = [];
  let token;
  for (let i = 0; i < maxPages; i++) {
    const page = await call(service, "GET", path, { query: { ...query, continuationToken: token } });
    items.push(...(page[key] || []));
    token = page.continuationToken;
    if (!token) break;
  }
  return items;
}

export const queue = {
  task: (id) => call("queue", "GET", `/task/${enc(id)}`),
  status: (id) => call("queue", "GET", `/task/${enc(id)}/status`),
  taskGroup: (id) => call("queue", "GET", `/task-group/${enc(id)}`),
  listTaskGroup: (id) => all("queue", `/task-group/${enc(id)}/list`, "tasks"),
  sealTaskGroup: (id) => call("queue", "POST", `/task-group/${enc(id)}/seal`),
  cancelTaskGroup: (id) => call("queue", "POST", `/task-group/${enc(id)}/cancel`),
  artifacts: (id, run) => all("queue", `/task/${enc(id)}/runs/${run}/artifacts`, "artifacts"),
  createTask: (id, def) => call("queue", "PUT", `/task/${enc(id)}`, { body: def }),
  rerunTask: (id) => call("queue", "POST", `/task/${enc(id)}/rerun`),
  cancelTask: (id) => call("queue", "POST", `/task/${enc(id)}/cancel`),
  changeTaskPriority: (id, p) => call("queue", "POST", `/task/${enc(id)}/priority`, { body: { newPriority: p } }),
  taskQueues: () => all("queue", "/task-queues", "taskQueues"),
  counts: (q) => call("queue", "GET", `/task-queues/${enc(q)}/counts`),
  pending: (q) => call("queue", "GET", `/task-queues/${enc(q)}/pending`, { query: { limit: 50 } }),
  claimed: (q) => call("queue", "GET", `/task-queues/${enc(q)}/claimed`, { query: { limit: 50 } }),
  worker: (q, group, id) => call("queue", "GET", `${workerPath(q)}/${enc(group)}/${enc(id)}`),
  quarantine: (q, group, id, body) => call("queue", "PUT", `${workerPath(q)}/${enc(group)}/${enc(id)}`, { body }),
};

function workerPath(taskQueueId) {
  const [provisionerId, workerType] = taskQueueId.split("/");
  return `/provisioners/${enc(provisionerId)}/worker-types/${enc(workerType)}/workers`;
}

export const workerManager = {
  pools: () => all("worker-manager", "/worker-pools", "workerPools"),
  pool: (id) => call("worker-manager", "GET", `/worker-pool/${enc(id)}`),
  workers: (id) => all("worker-manager", `/workers/${enc(id)}`, "workers", {}, 5),
  errors: (id) => call("worker-manager", "GET", `/worker-pool-errors/${enc(id)}`, { query: { limit: 20 } }),
};

// A link to an artifact: plain for public/ names, with a bewit otherwise (when signed in).
export async function artifactUrl(taskId, runId, name) {
  const url = apiUrl("queue", `/task/${enc(taskId)}/runs/${runId}/artifacts/${enc(name)}`);
  const creds = credentials();
  return name.startsWith("public/") || !creds ? url : bewitUrl(creds, url);
}

// An artifact's response (the API redirects to storage; fetch follows, no headers sent). A public/
// name is read without credentials, and with a bewit when the deployment refuses that (403).
export async function fetchArtifact(taskId, runId, name) {
  let res = await fetch(await artifactUrl(taskId, runId, name), { cache: "no-store" });
  const creds = credentials();
  if (res.status === 403 && creds && name.startsWith("public/")) {
    const url = apiUrl("queue", `/task/${enc(taskId)}/runs/${runId}/artifacts/${enc(name)}`);
    res = await fetch(await bewitUrl(creds, url), { cache: "no-store" });
  }
  return res;
}

// An artifact's text, or null when there is none (yet).
export async function artifactText(taskId, runId, name) {
  const res = await fetchArtifact(taskId, runId, name);
  if (res.status === 404) return null;
  if (!res.ok) throw new ApiError(res.status, null);
  return res.text();
}
