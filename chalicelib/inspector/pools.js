// Task queues and worker pools: counts, pending and claimed tasks, workers, errors, quarantine.
import { queue, workerManager } from "./api.js";
import { action, every, h, link, say, table, when } from "./dom.js";

async function orNull(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

export function poolsView(main, signal) {
  const pools = h("div");
  const queues = h("div");
  main.append(h("h1", {}, "Task queues and worker pools"), h("h2", {}, "Worker pools"), pools, h("h2", {}, "Task queues"), queues);
  every(
    5000,
    async () => {
      const [poolList, queueList] = await Promise.all([workerManager.pools(), queue.taskQueues()]);
      const counts = await Promise.all(queueList.map((q) => queue.counts(q.taskQueueId)));
      if (signal.aborted) return;
      pools.replaceChildren(
        table(
          "Worker pools",
          ["pool", "provider", "requested", "running", "stopping", "capacity (running)"],
          poolList.map((p) => [
            link(`#/queue/${p.workerPoolId}`, p.workerPoolId),
            p.providerId,
            String(p.requestedCount ?? 0),
            String(p.runningCount ?? 0),
            String(p.stoppingCount ?? 0),
            String(p.runningCapacity ?? 0),
          ]),
        ),
      );
      queues.replaceChildren(
        table(
          "Task queues",
          ["task queue", "pending", "claimed", "last active"],
          queueList.map((q, i) => [
            link(`#/queue/${q.taskQueueId}`, q.taskQueueId),
            String(counts[i].pendingTasks),
            String(counts[i].claimedTasks),
            when(q.lastDateActive),
          ]),
        ),
      );
    },
    signal,
  );
}

export function queueView(main, taskQueueId, signal) {
  const counts = h("p", { id: "queue-counts" });
  const pool = h("div");
  const workers = h("div");
  const errors = h("div");
  const pending = h("div");
  const claimed = h("div");
  main.append(
    h("h1", {}, "Task queue ", h("code", {}, taskQueueId)),
    counts,
    h("h2", {}, "Worker pool"),
    pool,
    h("h2", {}, "Workers"),
    workers,
    h("h2", {}, "Pool errors"),
    errors,
    h("h2", {}, "Pending tasks"),
    pending,
    h("h2", {}, "Claimed tasks"),
    claimed,
  );
  const taskLink = (t) => link(`#/task/${t.taskId}`, t.task?.metadata?.name || t.taskId);
  every(
    3000,
    async () => {
      const [c, p, cl, def, ws, errs] = await Promise.all([
        queue.counts(taskQueueId),
        queue.pending(taskQueueId),
        queue.claimed(taskQueueId),
        orNull(workerManager.pool(taskQueueId)),
        orNull(workerManager.workers(taskQueueId)),
        orNull(workerManager.errors(taskQueueId)),
      ]);
      if (signal.aborted) return;
      counts.textContent = `${c.pendingTasks} pending, ${c.claimedTasks} claimed`;
      pool.replaceChildren(
        def
          ? h(
              "p",
              {},
              `provider ${def.providerId} · ${def.runningCount} running, ${def.requestedCount} requested, `,
              `${def.stoppingCount} stopping · owner ${def.owner}`,
              def.description ? ` · ${def.description}` : "",
            )
          : h("p", {}, "No worker pool of this name: its workers are started elsewhere."),
      );
      workers.replaceChildren(
        ws && ws.length
          ? table(
              "Workers of the pool",
              ["worker", "group", "state", "capacity", "created"],
              ws.map((w) => [
                link(`#/worker/${taskQueueId}/${w.workerGroup}/${w.workerId}`, w.workerId),
                w.workerGroup,
                w.state,
                String(w.capacity),
                when(w.created),
              ]),
            )
          : h("p", {}, "No workers."),
      );
      const errList = errs ? errs.workerPoolErrors : [];
      errors.replaceChildren(
        errList.length
          ? table(
              "Errors of the last 7 days",
              ["reported", "kind", "title", "description"],
              errList.map((e) => [when(e.reported), e.kind, e.title, e.description]),
            )
          : h("p", {}, "No errors."),
      );
      pending.replaceChildren(
        p.tasks.length
          ? table("Pending", ["task", "run", "since"], p.tasks.map((t) => [taskLink(t), String(t.runId), when(t.inserted)]))
          : h("p", {}, "None."),
      );
      claimed.replaceChildren(
        cl.tasks.length
          ? table(
              "Claimed",
              ["task", "run", "worker", "claimed"],
              cl.tasks.map((t) => [taskLink(t), String(t.runId), `${t.workerGroup}/${t.workerId}`, when(t.claimed)]),
            )
          : h("p", {}, "None."),
      );
    },
    signal,
  );
}

export function workerView(main, taskQueueId, workerGroup, workerId, signal) {
  const info = h("div");
  const recent = h("div");
  const until = h("input", { id: "quarantine-until", type: "datetime-local", required: true });
  const reason = h("input", { id: "quarantine-info", type: "text", maxlength: "4000" });
  const form = h(
    "form",
    { class: "quarantine" },
    h("label", { for: "quarantine-until" }, "Quarantine until (your local time)"),
    until,
    h("label", { for: "quarantine-info" }, "Reason"),
    reason,
    h("button", { type: "submit" }, "Quarantine"),
    action("Lift quarantine", async () => {
      await queue.quarantine(taskQueueId, workerGroup, workerId, { quarantineUntil: new Date(0).toISOString() });
      return "Quarantine lifted.";
    }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const body = { quarantineUntil: new Date(until.value).toISOString() };
      if (reason.value) body.quarantineInfo = reason.value;
      await queue.quarantine(taskQueueId, workerGroup, workerId, body);
      say(`Worker quarantined until ${new Date(until.value).toLocaleString()}.`, "ok");
    } catch (err) {
      say(`Quarantine failed: ${err.message}`, "error");
    }
  });
  main.append(
    h("h1", {}, "Worker ", h("code", {}, `${workerGroup}/${workerId}`)),
    h("p", { class: "muted" }, "task queue ", link(`#/queue/${taskQueueId}`, taskQueueId)),
    info,
    h("h2", {}, "Recent tasks"),
    recent,
    h("h2", {}, "Quarantine"),
    form,
  );
  every(
    5000,
    async () => {
      const w = await queue.worker(taskQueueId, workerGroup, workerId);
      if (signal.aborted) return;
      const q = w.quarantineUntil && new Date(w.quarantineUntil) > new Date();
      info.replaceChildren(
        h(
          "p",
          {},
          `first claim `,
          when(w.firstClaim),
          ` · last active `,
          when(w.lastDateActive),
          q ? h("strong", {}, " · quarantined until ", when(w.quarantineUntil)) : " · not quarantined",
        ),
      );
      recent.replaceChildren(
        w.recentTasks.length
          ? table(
              "Its last claims, newest first",
              ["task", "run"],
              [...w.recentTasks].reverse().map((t) => [link(`#/task/${t.taskId}`, t.taskId), String(t.runId)]),
            )
          : h("p", {}, "None."),
      );
    },
    signal,
  );
}
