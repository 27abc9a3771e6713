// The inspector's shell: routes (#/group/<id>, #/task/<id>, #/queues, #/queue/<id>,
// #/worker/<taskQueueId>/<group>/<id>), the search box, and the credentials form.
import { ApiError, credentials, queue, setCredentials } from "./api.js";
import { errorText, h, link, say } from "./dom.js";
import { groupView } from "./group.js";
import { poolsView, queueView, workerView } from "./pools.js";
import { taskView } from "./task.js";

const SLUGID = /[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]/;
const ID = new RegExp(`^${SLUGID.source}$`);
const QUEUE = /^[a-zA-Z0-9_-]{1,38}\/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$/;
const main = document.getElementById("main");
let current = new AbortController();

function home(m) {
  m.append(
    h("h1", {}, "taskqueue inspector"),
    h("p", {}, "Enter a taskId or taskGroupId above (a pasted link works too), or look at the ", link("#/queues", "task queues and worker pools"), "."),
    h(
      "p",
      { class: "muted" },
      "Reading needs no credentials where the deployment lets anonymous callers read; actions (rerun, cancel, ",
      "retrigger, priority, seal, quarantine) need yours: use Sign in. They stay in this tab only.",
    ),
  );
}

// taskId or taskGroupId: a task group when it has tasks, the task otherwise; both when both exist.
async function search(m, id) {
  const [group, task] = await Promise.all([
    queue.taskGroup(id).catch((e) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e))),
    queue.task(id).catch((e) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e))),
  ]);
  if (group && !task) return void location.replace(`#/group/${id}`);
  if (task && !group) return void location.replace(`#/task/${id}`);
  m.append(h("h1", {}, "Search: ", h("code", {}, id)));
  if (!group && !task) return void m.append(h("p", {}, "No task and no task group has this id."));
  m.append(
    h(
      "ul",
      {},
      h("li", {}, link(`#/task/${id}`, `Task ${task.metadata.name}`)),
      h("li", {}, link(`#/group/${id}`, "Task group of the same id")),
    ),
  );
}

function route(event) {
  current.abort();
  current = new AbortController();
  const signal = current.signal;
  main.replaceChildren();
  say("");
  let path = location.hash.replace(/^#\/?/, "");
  try {
    path = decodeURIComponent(path);
  } catch {
    // not percent-encoded text: taken as it is
  }
  const [kind, ...rest] = path.split("/");
  const arg = rest.join("/");
  document.title = `${path || "home"} · taskqueue inspector`;
  try {
    if (kind === "group" && ID.test(arg)) groupView(main, arg, signal);
    else if (kind === "task" && ID.test(arg)) taskView(main, arg, signal);
    else if (kind === "search" && ID.test(arg)) search(main, arg).catch((e) => say(errorText(e), "error"));
    else if (kind === "queues") poolsView(main, signal);
    else if (kind === "queue" && QUEUE.test(arg)) queueView(main, arg, signal);
    else if (kind === "worker" && rest.length === 4) workerView(main, `${rest[0]}/${rest[1]}`, rest[2], rest[3], signal);
    else home(main);
  } catch (err) {
    say(errorText(err), "error");
  }
  if (event) main.focus(); // a new view (not the first load): keyboard and screen reader users start at it
}

function onSearch(e) {
  e.preventDefault();
  const text = document.getElementById("q").value.trim();
  const id = text.match(SLUGID);
  const linked = text.match(/#\/(task|group)\/([A-Za-z0-9_-]{22})/); // a pasted deep link
  if (linked) location.hash = `#/${linked[1]}/${linked[2]}`;
  else if (QUEUE.test(text)) location.hash = `#/queue/${text}`;
  else if (id) location.hash = `#/search/${id[0]}`;
  else say("Enter a taskId or taskGroupId (22 characters), or a task queue such as proj/linux.", "error");
}

function showWho() {
  const c = credentials();
  document.getElementById("who").textContent = c ? `signed in as ${c.clientId}` : "anonymous";
  document.getElementById("sign-out").hidden = !c;
}

function setupCredentials() {
  const dialog = document.getElementById("credentials");
  const form = dialog.querySelector("form");
  document.getElementById("sign-in").addEventListener("click", () => dialog.showModal());
  document.getElementById("sign-out").addEventListener("click", () => {
    setCredentials(null);
    showWho();
    say("Signed out: requests are anonymous.", "ok");
  });
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const value = { clientId: data.get("clientId").trim(), accessToken: data.get("accessToken").trim() };
    const cert = data.get("certificate").trim();
    if (cert) {
      try {
        JSON.parse(cert);
      } catch {
        say("The certificate must be the JSON text of temporary credentials.", "error");
        return;
      }
      value.certificate = cert;
    }
    setCredentials(value);
    form.reset();
    dialog.close();
    showWho();
    say(`Signed in as ${value.clientId} (this tab only).`, "ok");
  });
}

document.getElementById("search").addEventListener("submit", onSearch);
window.addEventListener("hashchange", route);
setupCredentials();
showWho();
route();
