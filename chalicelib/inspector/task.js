// A task: state and actions, runs, artifacts and log of a chosen run (the live log while it runs),
// and the definition. Status is read every 2 s while the task is unresolved, the log every 1.5 s.
import { artifactText, artifactUrl, fetchArtifact, queue } from "./api.js";
import { action, badge, duration, every, h, link, RESOLVED, say, table, when } from "./dom.js";

const LOG = "public/logs/live.log";

// A new taskId: a v4 UUID in url-safe base64 (a "nice" slugid, never starting with `-`).
export function slugid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

// Retrigger: the same definition under a new taskId, created now, its deadline and expiry as far
// from now as they were from its creation, without dependencies (it runs at once).
function copyOf(def) {
  const shift = Date.now() - new Date(def.created).getTime();
  const moved = (iso) => new Date(new Date(iso).getTime() + shift).toISOString();
  const copy = { ...def, created: new Date().toISOString(), deadline: moved(def.deadline), dependencies: [] };
  if (def.expires) copy.expires = moved(def.expires);
  return copy;
}

// Save an artifact as a file: fetched through the API (which redirects to storage, another origin,
// where a link's `download` attribute does not apply), then handed to the browser as a download.
async function save(taskId, runId, name) {
  const res = await fetchArtifact(taskId, runId, name);
  if (!res.ok) throw new Error(`HTTP ${res.status} for ${name}`);
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: name.split("/").pop() });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return `Downloaded ${name}.`;
}

export function taskView(main, taskId, signal) {
  let def = null;
  let status = null;
  let runId = null; // the run shown; null: the latest
  const head = h("div");
  const runs = h("div");
  const runPicker = h("select", { id: "run-picker" });
  const artifacts = h("div");
  const logState = h("p", { class: "muted", id: "log-state", "aria-live": "polite" });
  const log = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "task log" });
  const definition = h("pre", { class: "definition" });
  const priority = h(
    "select",
    { id: "priority" },
    ["highest", "very-high", "high", "medium", "low", "very-low", "lowest"].map((p) => h("option", { value: p }, p)),
  );
  runPicker.addEventListener("change", () => {
    runId = Number(runPicker.value);
    log.textContent = "";
    showRun();
  });

  main.append(
    head,
    h(
      "div",
      { class: "actions" },
      action("Rerun", async () => {
        await queue.rerunTask(taskId);
        runId = null;
        refresh();
        return "Rerun requested: a new run is pending.";
      }),
      action(
        "Cancel",
        async () => {
          await queue.cancelTask(taskId);
          refresh();
          return "Task cancelled.";
        },
        { class: "danger" },
      ),
      action("Retrigger", async () => {
        const newId = slugid();
        await queue.createTask(newId, copyOf(def));
        const shown = new Promise((resolve) => window.addEventListener("hashchange", resolve, { once: true }));
        location.hash = `#/task/${newId}`;
        await shown; // the new view is up (it clears the status line): say it there
        return `Retriggered as ${newId}.`;
      }),
      h(
        "span",
        { class: "inline" },
        h("label", { for: "priority" }, "Priority "),
        priority,
        action("Change priority", async () => {
          await queue.changeTaskPriority(taskId, priority.value);
          def = await queue.task(taskId);
          definition.textContent = JSON.stringify(def, null, 2);
          return `Priority is now ${priority.value}.`;
        }),
      ),
    ),
    h("h2", {}, "Runs"),
    runs,
    h("p", {}, h("label", { for: "run-picker" }, "Artifacts and log of run "), runPicker),
    h("h2", {}, "Artifacts"),
    artifacts,
    h("h2", {}, "Log"),
    logState,
    log,
    h("details", {}, h("summary", {}, "Definition"), definition),
  );

  const shownRun = () => (runId !== null ? runId : status.runs.length - 1);

  async function showRun() {
    const n = shownRun();
    if (n < 0) {
      artifacts.replaceChildren(h("p", {}, "No run yet."));
      logState.textContent = "No run yet: the log appears once the task runs.";
      return;
    }
    const list = await queue.artifacts(taskId, n);
    const rows = await Promise.all(
      list.map(async (a) => [
        h("a", { href: String(await artifactUrl(taskId, n, a.name)) }, a.name),
        a.contentType || a.storageType,
        when(a.expires),
        action("Download", () => save(taskId, n, a.name), { "aria-label": `Download ${a.name}` }),
      ]),
    );
    if (signal.aborted) return;
    artifacts.replaceChildren(
      rows.length ? table(`Artifacts of run ${n}`, ["name (opens it)", "type", "expires", "save"], rows) : h("p", {}, "No artifacts."),
    );
  }

  async function readLog() {
    const n = shownRun();
    if (n < 0) return;
    const run = status.runs[n];
    const live = run.state === "running" || run.state === "pending";
    const text = await artifactText(taskId, n, LOG);
    if (signal.aborted) return;
    if (text !== null && text !== log.textContent) {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = text;
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
    logState.textContent =
      text === null
        ? live
          ? `Run ${n} has no log yet; it shows here once the worker uploads it.`
          : `Run ${n} has no log.`
        : live
          ? `Live log of run ${n} (updated ${new Date().toLocaleTimeString()}; it grows while the task runs).`
          : `Final log of run ${n} (${run.state}).`;
    logState.dataset.live = live ? "yes" : "no";
  }

  const refresh = every(
    () => (status && RESOLVED.has(status.state) ? 10000 : 2000), // resolved: only a rerun changes it
    async () => {
      // What the page shows of the status (a reclaim's new takenUntil is not shown: no redraw for it).
      const shownOf = (st) => JSON.stringify(st, (key, value) => (key === "takenUntil" ? undefined : value));
      const before = status ? shownOf(status) : "";
      status = (await queue.status(taskId)).status;
      if (!def) {
        def = await queue.task(taskId);
        definition.textContent = JSON.stringify(def, null, 2);
        priority.value = def.priority || "lowest";
      }
      if (signal.aborted || shownOf(status) === before) return;
      head.replaceChildren(
        h("h1", {}, def.metadata.name, " ", h("span", { id: "task-state" }, badge(status.state))),
        h(
          "p",
          { class: "muted" },
          "taskId ",
          h("code", {}, taskId),
          " · group ",
          link(`#/group/${status.taskGroupId}`, status.taskGroupId),
          " · queue ",
          link(`#/queue/${status.taskQueueId}`, status.taskQueueId),
          ` · retries left ${status.retriesLeft}`,
          ` · deadline `,
          when(status.deadline),
        ),
        h("p", {}, def.metadata.description || ""),
      );
      runs.replaceChildren(
        status.runs.length
          ? table(
              "Runs",
              ["run", "state", "reason created", "reason resolved", "scheduled", "started", "took", "worker"],
              status.runs.map((r) => [
                String(r.runId),
                badge(r.state),
                r.reasonCreated,
                r.reasonResolved || "–",
                when(r.scheduled),
                when(r.started),
                duration(r.started, r.resolved),
                r.workerId ? link(`#/worker/${status.taskQueueId}/${r.workerGroup}/${r.workerId}`, r.workerId) : "–",
              ]),
            )
          : h("p", {}, `No run yet (${status.state}).`),
      );
      const keep = runPicker.value;
      runPicker.replaceChildren(
        ...status.runs.map((r) => h("option", { value: r.runId }, `${r.runId} (${r.state})`)).reverse(),
      );
      runPicker.value = runId !== null ? String(runId) : keep && runId !== null ? keep : String(shownRun());
      await showRun();
      await readLog(); // once more after a change: the final log when the run has just ended
    },
    signal,
  );
  every(
    1500,
    async () => {
      const n = status ? shownRun() : -1;
      if (n >= 0 && !RESOLVED.has(status.runs[n].state)) await readLog();
    },
    signal,
  );
  say("");
}
