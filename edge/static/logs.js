// Door events (filters, pages, live), the operation log, alarms. Filters the server does not
// declare in /openapi.json are not offered (the logs engineer adds building, apartment, ...).
import { act, api, badge, can, declared, download, errorText, field, fmt, h, live, pageControls, put, siteInstant, table, timeLabel, toast, when } from "./lib.js";


const name = (id, label) => (label && label !== id ? `${label} (${id})` : fmt(id));

/** What an emergency record touched: every door it names. */
function detailText(e) {
  const d = e.detail || {};
  if (Array.isArray(d.doors)) return `doors: ${d.doors.join(", ") || "none"}${d.actor ? ` · by ${d.actor}` : ""}`;
  if (d.actor) return `by ${d.actor}`;
  return "";
}

/** Export buttons for a log the server can export (the logs engineer's endpoints). */
function exportTools(params, path, what) {
  if (!params) return null;
  const formats = params.has("format") ? ["csv", "xlsx"] : [null];
  return h("div", { class: "row end" }, formats.map((f) => h("button", {
    type: "button", id: `export-${what}${f ? `-${f}` : ""}`,
    onclick: () => download(f ? `${path}?format=${f}` : path),
  }, `Export ${what}${f ? ` ${f.toUpperCase()}` : ""}`)));
}

/** "Verify the chain" when the server offers GET /events/verify. */
async function verifyTool() {
  if (!(await declared("/events/verify"))) return null;
  const out = h("span", { class: "small", id: "verify-result" });
  return h("div", { class: "row" }, h("button", {
    type: "button", id: "verify-chain",
    onclick: async (ev) => {
      const r = await act(ev.target, () => api("GET", "/events/verify"));
      if (r) put(out, r.ok === false ? badge("chain broken", "bad") : badge("chain intact", "ok"), ` ${r.message || (r.checked !== undefined ? `${r.checked} events checked` : "")}`);
    },
  }, "Verify the event chain"), out);
}

export function eventColumns() {
  return [
    { label: timeLabel(), render: (e) => when(e.at) }, { label: "Type", key: "type" }, { label: "Action", key: "action" },
    { label: "Result", render: (e) => badge(e.result) }, { label: "Reason", key: "reason" },
    { label: "Door", render: (e) => name(e.door, e.door_name) },
    { label: "Person", render: (e) => (e.person ? h("a", { href: `#/people/${encodeURIComponent(e.person)}` }, name(e.person, e.person_name)) : "—") },
    { label: "Apartment", render: (e) => name(e.apartment, e.apartment_name) },
    { label: "Method", key: "credential_kind" }, { label: "Detail", render: detailText },
  ];
}

async function logsPage(root) {
  const content = h("div");
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const preset = Object.fromEntries(new URLSearchParams(location.hash.split("?")[1] || ""));
  let leave = null;
  const show = async (tab) => {
    if (leave) leave();
    leave = null;
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.tab === tab);
    put(content, h("p", { class: "muted" }, "Loading…"));
    leave = await LOG_TABS[tab](content, preset);
  };
  for (const tab of Object.keys(LOG_TABS)) {
    tabs.append(h("button", { dataset: { tab }, onclick: () => show(tab) }, tab));
  }
  put(root, h("h1", {}, "Logs"), tabs, content);
  await show("Door events");
  return () => { if (leave) leave(); };
}

function filterQuery(form) {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (!v) continue;
    if (k === "live") continue;
    q.set(k, k === "since" || k === "until" ? siteInstant(v).toISOString() : v);
  }
  return q;
}

const LOG_TABS = {
  async "Door events"(el, preset = {}) {
    const [doors, params] = await Promise.all([api("GET", "/doors"), declared("/events")]);
    const has = (p) => !params || params.has(p);
    const list = h("div", { id: "event-list" });
    const optional = [
      ["building", "Building"], ["apartment", "Apartment"], ["reason", "Reason"], ["temp_key", "Temp key"], ["initiated_by", "Initiated by"],
    ].filter(([p]) => params && params.has(p)).map(([p, label]) => field(label, h("input", { name: p, value: preset[p] || "" })));
    const liveBox = h("input", { type: "checkbox", name: "live", id: "live-log", checked: true });
    const form = h("form", { class: "fields filter-bar", role: "search" },
      field("Type", h("select", { name: "type" }, ["", "access", "door", "alarm", "emergency", "system"].map((t) => h("option", { value: t }, t || "any")))),
      field("Result", h("select", { name: "result" }, ["", "success", "failed", "offline"].map((t) => h("option", { value: t }, t || "any")))),
      field("Door", h("select", { name: "door" }, h("option", { value: "" }, "any"), doors.items.map((d) => h("option", { value: d.id }, d.name || d.id)))),
      has("person") ? field("Person id", h("input", { name: "person", value: preset.person || "" })) : null,
      optional,
      field(timeLabel("From"), h("input", { name: "since", type: "datetime-local" })),
      field(timeLabel("Until"), h("input", { name: "until", type: "datetime-local" })),
      h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, "Search"),
        h("label", { class: "check" }, liveBox, "Live")));
    const exportLink = (fmtName) => h("a", {
      class: "button", href: "#", id: `export-${fmtName}`,
      onclick: (ev) => {
        ev.preventDefault();
        const q = filterQuery(form);
        q.set("format", fmtName);
        const a = h("a", { href: `/api/v1/events/export?${q}`, download: "" });
        document.body.append(a);
        a.click();
        a.remove();
      },
    }, `Export ${fmtName.toUpperCase()}`);
    const PAGE = 50;
    let cursors = [""]; // the cursor of each page shown so far; [0]: the newest
    let pageNo = 0;
    let rows = [];
    let next = null;
    let heard = null; // live events that arrive while a page loads
    const columns = eventColumns();
    const render = () => {
      put(list, pageControls(pageNo * PAGE, PAGE, rows.length, undefined, (o) => go(o / PAGE)), table(columns, rows));
      const nextButton = list.querySelector(".pager button:last-child");
      if (nextButton) nextButton.disabled = !next;
    };
    const go = async (n) => {
      if (n > pageNo && next) cursors[n] = next;
      pageNo = n;
      const q = filterQuery(form);
      q.set("limit", String(PAGE));
      q.set("cursor", cursors[n] || "");
      heard = [];
      const page = await api("GET", `/events?${q}`);
      // events heard live while the page was on its way are newer than it: keep them on top
      const top = page.items.length ? page.items[0].seq : -1;
      rows = n === 0 ? [...heard.filter((e) => e.seq > top), ...page.items].slice(0, PAGE) : page.items;
      heard = null;
      next = page.cursor;
      render();
    };
    // A new event shows at the top of the first page when it passes the filters.
    const matches = (e) => {
      const f = Object.fromEntries(new FormData(form));
      return ["type", "result", "door", "person"].every((k) => !f[k] || e[k] === f[k]) && !f.until;
    };
    const off = live.on("event", (e) => {
      if (!liveBox.checked || pageNo !== 0 || !matches(e)) return;
      if (heard) { heard.push(e); return; }
      if (rows.some((r) => r.seq === e.seq)) return;
      rows = [e, ...rows].slice(0, PAGE);
      render();
      const first = list.querySelector("tbody tr");
      if (first) first.classList.add("fresh");
    });
    form.addEventListener("submit", (ev) => { ev.preventDefault(); cursors = [""]; go(0).catch((e) => toast(errorText(e), true)); });
    put(el, h("section", { class: "panel" }, form, h("div", { class: "row end" }, await verifyTool(), exportLink("csv"), exportLink("xlsx"))),
      h("section", { class: "panel" }, list));
    await go(0);
    return off;
  },
  async Audit(el) {
    const [page, exportable] = await Promise.all([api("GET", "/audit?limit=200"), declared("/audit/export")]);
    put(el, exportTools(exportable, "/audit/export", "audit"), h("section", { class: "panel" }, table([
      { label: timeLabel(), render: (e) => when(e.at) }, { label: "Who", key: "actor" }, { label: "Action", key: "action" },
      { label: "Target", key: "target" }, { label: "Detail", render: (e) => fmt(e.detail) }], page.items)));
  },
  async Alarms(el) {
    const [page, exportable] = await Promise.all([api("GET", "/alarms"), declared("/alarms/export")]);
    put(el, exportTools(exportable, "/alarms/export", "alarms"), h("section", { class: "panel" }, table([
      { label: timeLabel(), render: (a) => when(a.at) }, { label: "Alarm", key: "kind" }, { label: "Where", key: "source" },
      { label: "State", render: (a) => (a.resolved ? badge("resolved", "ok") : badge("open")) },
      { label: "", render: (a) => (!a.resolved && can("installer") ? h("button", {
        onclick: async (ev) => { if (await act(ev.target, () => api("POST", `/alarms/${a.id}/resolve`, { note: "" }), "Alarm resolved")) LOG_TABS.Alarms(el); },
      }, "Resolve") : (a.resolved_by || "")) }], page.items)));
  },
};

export { logsPage };
