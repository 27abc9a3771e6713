// Small DOM helpers: elements are built with textContent, never from HTML strings.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const STATES = ["unscheduled", "pending", "running", "completed", "failed", "exception"];
export const RESOLVED = new Set(["completed", "failed", "exception"]);

export function badge(state) {
  return h("span", { class: `state state-${state}` }, state);
}

export function link(hash, text) {
  return h("a", { href: hash }, text);
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

export function duration(from, to) {
  if (!from) return "–";
  const ms = (to ? new Date(to) : new Date()) - new Date(from);
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// A table whose rows are arrays of cells; it scrolls sideways on a narrow screen.
export function table(caption, headers, rows) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    ),
  );
}

// Announced to screen readers and shown at the top of the page.
export function say(text, kind = "info") {
  const status = document.getElementById("status");
  status.className = `status status-${kind}`;
  status.textContent = text;
}

export function errorText(err) {
  return err && err.code ? `${err.code}: ${err.message}` : String(err && err.message ? err.message : err);
}

// A button that runs an action, says how it went, and is disabled while it runs.
export function action(label, run, attrs = {}) {
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const message = await run();
      if (message) say(message, "ok");
    } catch (err) {
      say(`${label} failed: ${errorText(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// Run `fn` now and then every `ms` (a number, or a function giving it after each run) until
// `signal` aborts; one run at a time; errors are shown. Returns a function that runs it again now
// (after an action), or as soon as the run under way ends.
export function every(ms, fn, signal) {
  let timer;
  let running = false;
  let again = false;
  const tick = async () => {
    if (signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    try {
      await fn();
    } catch (err) {
      if (!signal.aborted) say(errorText(err), "error");
    }
    running = false;
    if (again) {
      again = false;
      return tick();
    }
    if (!signal.aborted) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  tick();
  return tick;
}
