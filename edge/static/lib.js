// Small helpers shared by every page: DOM building, the API client, the live feed.
// Text always goes in as text nodes (never innerHTML), so no value can inject markup.

export const state = { me: null, health: null, sync: null, csrf: null };

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && k !== "list" && k !== "form") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace the children of ``el``, leaving out null/false (DOM would print "null"). */
export function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

let fieldSeq = 0;
/** A labelled form control; the label points at the control (for screen readers and tests). */
export function field(text, control) {
  if (!control.id) control.id = `f${++fieldSeq}`;
  return h("div", { class: "field" }, h("label", { htmlFor: control.id }, text), control);
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code;
    this.field = err.field;
    this.issues = err.issues || [];
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && !path.startsWith("/auth/")) {
      state.me = null;
      location.hash = "#/login";
    }
    throw err;
  }
  return data;
}

export function toast(message, bad = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = bad ? "toast bad" : "toast";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

export function errorText(err) {
  if (err.issues && err.issues.length) {
    return err.issues.map((i) => `${i.entity}: ${i.field}: ${i.message}`).join("; ");
  }
  return err.field ? `${err.message} (${err.field})` : err.message;
}

/** Run an action from a button: disable it meanwhile, toast the outcome. */
export async function act(button, fn, okMessage) {
  if (button) button.disabled = true;
  try {
    const out = await fn();
    if (okMessage) toast(typeof okMessage === "function" ? okMessage(out) : okMessage);
    return out;
  } catch (err) {
    toast(errorText(err), true);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export const ROLE_RANK = { viewer: 0, installer: 1, admin: 2 };
export function can(role) {
  return state.me && ROLE_RANK[state.me.role] >= ROLE_RANK[role];
}

// -- the live feed (server-sent events), shared by all pages ------------------------------
const listeners = new Map();
let source = null;
export const live = {
  start() {
    if (source) return;
    source = new EventSource("/api/v1/stream");
    const dot = document.getElementById("live");
    source.onopen = () => dot.classList.add("on");
    source.onerror = () => dot.classList.remove("on");
    for (const topic of ["event", "door", "alarm"]) {
      source.addEventListener(topic, (msg) => {
        const data = JSON.parse(msg.data);
        for (const fn of listeners.get(topic) || []) fn(data);
      });
    }
  },
  stop() {
    if (source) source.close();
    source = null;
    document.getElementById("live").classList.remove("on");
  },
  on(topic, fn) {
    if (!listeners.has(topic)) listeners.set(topic, new Set());
    listeners.get(topic).add(fn);
    return () => listeners.get(topic).delete(fn);
  },
};

export function table(columns, rows, onRow) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
      h("tbody", {}, rows.length === 0
        ? h("tr", {}, h("td", { colSpan: columns.length, class: "muted" }, "Nothing here yet."))
        : rows.map((r) => h("tr", {
          class: onRow ? "clickable" : null,
          onclick: onRow ? () => onRow(r) : null,
        }, columns.map((c) => h("td", {}, c.render ? c.render(r) : fmt(r[c.key]))))))));
}

export function fmt(v) {
  if (v === null || v === undefined || v === "") return "—";
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
