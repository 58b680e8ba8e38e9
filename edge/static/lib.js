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

/** A table; on a phone (CSS) each row becomes a card whose cells carry their column name. */
export function table(columns, rows, onRow) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
      h("tbody", {}, rows.length === 0
        ? h("tr", {}, h("td", { colSpan: columns.length, class: "muted" }, "Nothing here yet."))
        : rows.map((r) => h("tr", {
          class: onRow ? "clickable" : null,
          onclick: onRow ? () => onRow(r) : null,
        }, columns.map((c) => h("td", { dataset: { label: c.label } }, c.render ? c.render(r) : fmt(r[c.key]))))))));
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

// -- time: every time is shown in the site's zone (GET /health "timezone"), labelled ---------

/** The site's IANA zone (the browser's until /health has answered). */
export function siteZone() {
  return (state.health && state.health.timezone) || Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** "Time (Europe/Berlin)": the header of a time column. */
export function timeLabel(text = "Time") {
  return `${text} (${siteZone()})`;
}

const formatters = new Map();
function parts(date, zone = siteZone()) {
  if (!formatters.has(zone)) {
    formatters.set(zone, new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }));
  }
  return Object.fromEntries(formatters.get(zone).formatToParts(date).map((p) => [p.type, p.value]));
}

/** An instant as the site's wall clock, "2026-12-01 14:03:12" (table cells under timeLabel). */
// A policy time without an offset is already the site's wall clock (POLICY.md): shown as is.
const WALL = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?$/;

export function when(iso) {
  if (iso === null || iso === undefined || iso === "") return "—";
  const wall = typeof iso === "string" && WALL.exec(iso);
  if (wall) return `${wall[1]} ${wall[2]}${wall[3] || ":00"}`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = parts(d);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** An instant with its zone, "14:03 (Europe/Berlin)", for text outside a labelled table. */
export function whenLabelled(iso) {
  const wall = typeof iso === "string" && WALL.exec(iso);
  if (wall) return `${wall[1]} ${wall[2]} (${siteZone()})`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return fmt(iso);
  const p = parts(d);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute} (${siteZone()})`;
}

/** An instant as a site wall-clock datetime-local value, "2026-12-01T14:03". */
export function siteLocal(date) {
  const p = parts(date);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/** The site-local hour (0-23) of an instant. */
export function siteHour(iso) {
  return Number(parts(new Date(iso)).hour);
}

/** Minutes the site's zone is ahead of UTC at ``date``. */
function offsetMinutes(date) {
  const p = parts(date);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
}

/** The instant of a site wall-clock time "2026-12-01T14:00[:00]" (a datetime-local value). */
export function siteInstant(local) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local || "");
  if (!m) return null;
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  let at = new Date(guess - offsetMinutes(new Date(guess)) * 60000);
  at = new Date(guess - offsetMinutes(at) * 60000); // across a DST change
  return at;
}

/** The site's midnight today, as an ISO instant (the dashboard's "today"). */
export function siteMidnight(now = new Date()) {
  const p = parts(now);
  return siteInstant(`${p.year}-${p.month}-${p.day}T00:00`).toISOString();
}

// -- confirmations, search boxes and page controls --------------------------------------------

/** Ask before a change that cannot be undone lightly; resolves true on "OK". */
export function confirmDialog(title, body, okText = "Confirm", danger = true) {
  return new Promise((resolve) => {
    const ok = h("button", { class: danger ? "danger" : "primary", value: "ok" }, okText);
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog", class: "stack" },
        h("h2", { id: "confirm-title" }, title),
        (Array.isArray(body) ? body : [body]).map((b) => (b instanceof Node ? b : h("p", {}, b))),
        h("div", { class: "row end" }, h("button", { value: "cancel" }, "Cancel"), ok)));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "ok"); });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

export function debounce(fn, ms = 250) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** "51-100 of 20,000" with Previous/Next; ``go(offset)`` loads a page. */
export function pageControls(offset, limit, shown, total, go) {
  const from = total === 0 ? 0 : offset + 1;
  const to = offset + shown;
  const n = (v) => v.toLocaleString("en-US");
  return h("div", { class: "pager row", role: "navigation", "aria-label": "Pages" },
    h("span", { class: "small muted", id: "page-count" },
      shown === 0 && offset === 0 ? "none" : total === undefined ? `${n(from)}-${n(to)}` : `${n(from)}-${n(to)} of ${n(total)}`),
    h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, "Previous"),
    h("button", { type: "button", disabled: total === undefined ? shown < limit : to >= total, onclick: () => go(offset + limit) }, "Next"));
}

// -- what the server offers: query parameters of a GET route, from /openapi.json -------------
let openapi = null;
/** The query parameter names ``GET path`` declares; null when the route does not exist. */
export async function declared(path) {
  openapi ??= api("GET", "/openapi.json").catch(() => ({ paths: {} }));
  const doc = await openapi;
  const op = (doc.paths[`/api/v1${path}`] || doc.paths[path] || {}).get;
  return op ? new Set((op.parameters || []).map((p) => p.name)) : null;
}

/** Download ``/api/v1<path>`` as the browser's own file download (the cookie goes along). */
export function download(path) {
  const a = h("a", { href: `/api/v1${path}`, download: "" });
  document.body.append(a);
  a.click();
  a.remove();
}
