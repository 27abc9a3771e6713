// A task group's dependency graph as SVG: tasks in columns by depth (longest chain of dependencies
// within the group), edges from dependency to dependent, each node coloured by state and a link.
const NS = "http://www.w3.org/2000/svg";
const W = 150, H = 34, GAP_X = 50, GAP_Y = 14, PAD = 10;

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function depths(tasks) {
  const byId = new Map(tasks.map((t) => [t.status.taskId, t]));
  const depth = new Map();
  const visit = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0; // a cycle cannot happen in the queue; stay safe anyway
    seen.add(id);
    const deps = (byId.get(id).task.dependencies || []).filter((d) => byId.has(d) && d !== id);
    const d = deps.length ? 1 + Math.max(...deps.map((x) => visit(x, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  for (const id of byId.keys()) visit(id, new Set());
  return depth;
}

export function graph(tasks) {
  const depth = depths(tasks);
  const columns = [];
  for (const t of tasks) {
    const d = depth.get(t.status.taskId);
    (columns[d] ||= []).push(t);
  }
  const pos = new Map();
  columns.forEach((col, x) =>
    col.forEach((t, y) => pos.set(t.status.taskId, { x: PAD + x * (W + GAP_X), y: PAD + y * (H + GAP_Y) })),
  );
  const width = PAD * 2 + columns.length * (W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": "graph-title",
    class: "graph",
  });
  root.append(svg("title", { id: "graph-title" }, `Dependency graph of ${tasks.length} tasks`));
  // Edges end in an arrowhead at the dependent.
  const marker = svg("marker", {
    id: "arrow",
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto",
  });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
  const defs = svg("defs");
  defs.append(marker);
  root.append(defs);
  const edges = svg("g", { class: "edges" });
  for (const t of tasks) {
    const to = pos.get(t.status.taskId);
    for (const dep of t.task.dependencies || []) {
      const from = pos.get(dep);
      if (!from || dep === t.status.taskId) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
      const mx = (x1 + x2) / 2;
      edges.append(svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
    }
  }
  root.append(edges);
  for (const t of tasks) {
    const { x, y } = pos.get(t.status.taskId);
    const name = t.task.metadata.name;
    const label = name.length > 18 ? `${name.slice(0, 17)}…` : name;
    const a = svg("a", { href: `#/task/${t.status.taskId}`, class: `node state-${t.status.state}` });
    a.dataset.taskId = t.status.taskId;
    a.append(svg("title", {}, `${name}: ${t.status.state}`));
    a.append(svg("rect", { x, y, width: W, height: H, rx: 6 }));
    a.append(svg("text", { x: x + 8, y: y + 14 }, label));
    a.append(svg("text", { x: x + 8, y: y + 28, class: "sub" }, t.status.state));
    root.append(a);
  }
  return root;
}
