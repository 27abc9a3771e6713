// A task group: counts per state, the dependency graph, every task; updated every 2 s.
import { queue } from "./api.js";
import { action, badge, every, h, link, RESOLVED, STATES, table } from "./dom.js";
import { graph } from "./graph.js";

const LARGE = 1000; // tasks: above it, no graph and a slower refresh

export function groupView(main, taskGroupId, signal) {
  const counts = h("ul", { class: "counts", "aria-label": "tasks per state" });
  const info = h("p", { class: "muted" });
  const picture = h("div", { class: "scroll graph-box" });
  const list = h("div");
  main.append(
    h("h1", {}, "Task group ", h("code", {}, taskGroupId)),
    info,
    counts,
    h(
      "div",
      { class: "actions" },
      action("Seal group", async () => {
        await queue.sealTaskGroup(taskGroupId);
        refresh();
        return "Task group sealed: no more tasks can be added.";
      }),
      action(
        "Cancel group",
        async () => {
          if (!confirm(`Cancel every unresolved task of ${taskGroupId}?`)) return "";
          const r = await queue.cancelTaskGroup(taskGroupId);
          refresh();
          return `Cancelled ${r.cancelledCount ?? ""} task(s).`;
        },
        { class: "danger" },
      ),
    ),
    h("h2", {}, "Graph"),
    picture,
    h("h2", {}, "Tasks"),
    list,
  );

  let shown = "";
  let size = 0;
  const refresh = every(
    () => (size > LARGE ? 10000 : 2000), // a large group's pages cost more: read it less often
    async () => {
      const [group, tasks] = await Promise.all([queue.taskGroup(taskGroupId), queue.listTaskGroup(taskGroupId)]);
      // Redrawn only on a change: keyboard focus and the reader's place stay put in between.
      const seen = JSON.stringify([group, tasks.map((t) => t.status)]);
      if (signal.aborted || seen === shown) return;
      shown = seen;
      size = tasks.length;
      const n = Object.fromEntries(STATES.map((s) => [s, 0]));
      for (const t of tasks) n[t.status.state] = (n[t.status.state] || 0) + 1;
      const done = tasks.filter((t) => RESOLVED.has(t.status.state)).length;
      info.replaceChildren(
        `${tasks.length} task(s), ${done} resolved · scheduler ${group.schedulerId}`,
        group.sealed ? ` · sealed ${new Date(group.sealed).toLocaleString()}` : " · not sealed",
        ` · expires ${new Date(group.expires).toLocaleString()}`,
      );
      counts.replaceChildren(
        ...STATES.map((s) => h("li", { "data-state": s }, badge(s), " ", h("span", { class: "count" }, n[s]))),
      );
      picture.replaceChildren(
        !tasks.length
          ? h("p", {}, "No tasks (yet).")
          : tasks.length > LARGE
            ? h("p", {}, `${tasks.length} tasks: too many to draw; the table lists them.`)
            : graph(tasks),
      );
      const rows = tasks.map((t) => [
        link(`#/task/${t.status.taskId}`, t.task.metadata.name),
        h("span", { "data-task-state": t.status.taskId }, badge(t.status.state)),
        link(`#/queue/${t.status.taskQueueId}`, t.status.taskQueueId),
        String(t.status.runs.length),
        h("code", {}, t.status.taskId),
      ]);
      list.replaceChildren(table("Tasks of the group", ["name", "state", "task queue", "runs", "taskId"], rows));
    },
    signal,
  );
}
