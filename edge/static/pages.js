// Every page of the UI: a table from the URL hash to a render function.
import { act, api, field, put, badge, can, errorText, fmt, h, live, s, state, table, toast, when } from "./lib.js";
import { entityPage, ENTITY_PAGES } from "./entities.js";
import { parkingPanel } from "./parking.js";
import { readersPanel } from "./readers.js";
import { locksPage } from "./locks.js";
import { importPage } from "./imports.js";

// -- onboarding and login -------------------------------------------------------------------

function authBox(title, intro, fields, submitText, onSubmit) {
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { class: "primary", type: "submit" }, submitText);
  const form = h("form", { class: "stack" },
    fields.map(([name, label, type, extra]) => field(label,
      h("input", { name, type, required: true, autocomplete: extra || "off" }))),
    error, button);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await onSubmit(Object.fromEntries(new FormData(form)), error);
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "auth-box panel" }, h("h1", {}, title), h("p", { class: "muted" }, intro), form);
}

async function setupPage(root, { onLogin }) {
  put(root, authBox(
    "Set up this gateway",
    "Enter the one-time setup code printed by `doorkeep init` or `doorkeep run`, and create the administrator account.",
    [["code", "Setup code", "text"], ["username", "Admin user name", "text", "username"],
      ["password", "Password (12 characters or more)", "password", "new-password"],
      ["confirm", "Repeat the password", "password", "new-password"]],
    "Create admin",
    async (f, error) => {
      if (f.password !== f.confirm) { error.textContent = "The passwords differ."; return; }
      const me = await api("POST", "/auth/setup", { code: f.code.trim(), username: f.username.trim(), password: f.password });
      await onLogin(me);
    }));
}

async function loginPage(root, { onLogin }) {
  put(root, authBox("Log in", "The installer and operator console of this site.",
    [["username", "User name", "text", "username"], ["password", "Password", "password", "current-password"]],
    "Log in",
    async (f) => onLogin(await api("POST", "/auth/login", { username: f.username.trim(), password: f.password }))));
}

// -- dashboard ------------------------------------------------------------------------------

function hourChart(events) {
  const grants = new Array(24).fill(0);
  const denials = new Array(24).fill(0);
  for (const e of events) {
    const hour = new Date(e.at).getHours();
    (e.result === "success" ? grants : denials)[hour] += 1;
  }
  const max = Math.max(1, ...grants.map((g, i) => g + denials[i]));
  const W = 480, H = 160, pad = 22, bw = (W - pad) / 24;
  const bars = [];
  for (let i = 0; i < 24; i++) {
    const gh = (grants[i] / max) * (H - pad - 8);
    const dh = (denials[i] / max) * (H - pad - 8);
    const x = pad + i * bw + 2;
    bars.push(s("rect", { class: "grant", x, y: H - pad - gh, width: bw - 4, height: gh },
      s("title", {}, `${i}:00 granted ${grants[i]}`)));
    bars.push(s("rect", { class: "deny", x, y: H - pad - gh - dh, width: bw - 4, height: dh },
      s("title", {}, `${i}:00 denied ${denials[i]}`)));
    if (i % 3 === 0) bars.push(s("text", { class: "axis", x: x + 1, y: H - 6 }, String(i).padStart(2, "0")));
  }
  const grid = [0.25, 0.5, 0.75, 1].map((f) => {
    const y = H - pad - f * (H - pad - 8);
    return s("line", { class: "gridline", x1: pad, x2: W, y1: y, y2: y });
  });
  const label = s("text", { class: "axis", x: 0, y: 12 }, String(max));
  const total = grants.reduce((a, b) => a + b, 0);
  const denied = denials.reduce((a, b) => a + b, 0);
  return h("div", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Today: ${total} granted, ${denied} denied` }, grid, label, bars),
    h("div", { class: "legend" }, h("span", {}, h("span", { class: "dot grant" }), `granted ${total}`),
      h("span", {}, h("span", { class: "dot deny" }), `denied ${denied}`)));
}

async function dashboardPage(root) {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const since = encodeURIComponent(midnight.toISOString());
  const [doors, hw, alarms, sync, events] = await Promise.all([
    api("GET", "/doors"), api("GET", "/hardware"), api("GET", "/alarms?open=true"),
    api("GET", "/sync"), api("GET", `/events?type=access&since=${since}&limit=1000`),
  ]);
  const unlocked = doors.items.filter((d) => d.state !== "locked").length;
  const online = hw.boards.filter((b) => b.online).length;
  const stat = (value, label, cls) => h("div", { class: "panel" },
    h("div", { class: `stat ${cls || ""}` }, value), h("div", { class: "stat-label" }, label));
  put(root, 
    h("h1", {}, "Dashboard"),
    h("div", { class: "grid" },
      stat(`${doors.items.length - unlocked}/${doors.items.length}`, "doors locked"),
      stat(`${online}/${hw.boards.length}`, "boards online"),
      stat(alarms.items.length, "open alarms"),
      stat(sync.enrolled ? (sync.stale ? "stale" : "in sync") : "standalone", `policy v${fmt(sync.version)}`)),
    h("div", { class: "grid wide" },
      h("section", { class: "panel" }, h("h2", {}, "Today's grants and denials"), hourChart(events.items)),
      h("section", { class: "panel" }, h("h2", {}, "Doors"),
        table([{ label: "Door", key: "name" }, { label: "State", render: (d) => badge(d.state) },
          { label: "Board", render: (d) => badge(d.board_online ? "online" : "offline") }], doors.items)),
      h("section", { class: "panel" }, h("h2", {}, "Open alarms"),
        table([{ label: "Alarm", key: "kind" }, { label: "Where", key: "source" },
          { label: "Since", render: (a) => when(a.at) }], alarms.items)),
      h("section", { class: "panel" }, h("h2", {}, "Boards"),
        table([{ label: "Board", key: "id" }, { label: "Type", key: "type" },
          { label: "Status", render: (b) => badge(b.online ? "online" : "offline") }], hw.boards)),
      parkingPanel()));
}

// -- doors ------------------------------------------------------------------------------------

function doorCard(door) {
  const stateBadge = badge(door.state);
  const card = h("div", { class: "panel door-card", dataset: { door: door.id } },
    h("div", { class: "card-head" }, h("h2", {}, door.name || door.id), stateBadge),
    h("p", { class: "muted small" }, `contact ${fmt(door.contact)} · board ${door.board_online ? "online" : "offline"} · fail-${fmt(door.fail_mode)}`),
    can("installer") ? h("div", { class: "row" },
      h("button", { class: "primary", onclick: (ev) => act(ev.target, () => api("POST", `/doors/${door.id}/unlock`, { seconds: 5 }), `${door.id} unlocked for 5 s`) }, "Unlock 5 s"),
      h("button", { onclick: (ev) => act(ev.target, () => api("POST", `/doors/${door.id}/lock`), `${door.id} locked`) }, "Lock")) : null);
  card.update = (d) => {
    stateBadge.textContent = d.state;
    stateBadge.className = `badge ${d.state}`;
    card.classList.remove("changed");
    void card.offsetWidth; // restart the highlight animation
    card.classList.add("changed");
  };
  return card;
}

// The emergency state of GET /doors: what is in force, and the site inputs with their latch.
function emergencyPanelParts(em) {
  em = em || { lockdown: false, unlocked: [], inputs: [] };
  const inForce = [em.lockdown ? "lockdown" : null, em.unlocked.length ? `emergency unlock: ${em.unlocked.join(", ")}` : null].filter(Boolean);
  return [
    h("p", {}, inForce.length ? badge(inForce.join(" · "), "emergency") : badge("normal", "ok")),
    em.inputs.length ? table([{ label: "Input", key: "id" }, { label: "Function", key: "function" },
      { label: "Now", render: (i) => i.active === null ? "—" : badge(i.active ? "active" : "inactive", i.active ? "bad" : "ok") },
      { label: "Latched", render: (i) => i.latched ? badge("until cleared", "emergency") : "—" }], em.inputs) : null,
  ].filter(Boolean);
}

async function doorsPage(root) {
  const doors = await api("GET", "/doors");
  const hw = await api("GET", "/hardware");
  const cards = new Map(doors.items.map((d) => [d.id, doorCard(d)]));
  const result = h("p", { class: "small", id: "present-result" });
  const present = h("form", { class: "fields", id: "present-form" },
    field("Reader", h("select", { name: "reader" }, hw.readers.map((r) => h("option", { value: r.id }, `${r.id} (${r.door})`)))),
    field("Credential", h("select", { name: "kind" }, ["pin", "rf_card", "uhf_card", "license_plate", "qr"].map((k) => h("option", { value: k }, k)))),
    field("Value", h("input", { name: "value", type: "password", autocomplete: "off", required: true })),
    h("button", { class: "primary", type: "submit" }, "Present"));
  present.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(present));
    const out = await act(ev.submitter, () => api("POST", "/presentations", f));
    present.elements.value.value = "";
    if (out) {
      put(result, out.granted ? badge("granted", "ok") : badge("denied", "bad"), ` ${out.door || ""} ${out.person ? "· " + out.person : ""} · ${out.reason || ""}`);
    }
  });
  const emergencyState = h("div", { id: "emergency-state" }, ...emergencyPanelParts(doors.emergency));
  const emergency = h("section", { class: "panel" }, h("h2", {}, "Emergency"), emergencyState, can("admin") ? h("div", {},
    h("p", { class: "muted small" }, "Unlock the emergency door group, lock down (only staff may enter), or return to normal. What an input started stays until you clear it."),
    h("div", { class: "row" },
      h("button", { class: "danger", onclick: (ev) => act(ev.target, () => api("POST", "/emergency", { action: "unlock" }), "Emergency unlock") }, "Emergency unlock"),
      h("button", { onclick: (ev) => act(ev.target, () => api("POST", "/emergency", { action: "lockdown" }), "Lockdown") }, "Lockdown"),
      h("button", { onclick: (ev) => act(ev.target, () => api("POST", "/emergency", { action: "clear" }), "Back to normal") }, "Clear"))) : null);
  put(root, 
    h("h1", {}, "Doors"),
    h("div", { class: "grid", id: "door-grid" }, [...cards.values()]),
    can("installer") ? h("section", { class: "panel" }, h("h2", {}, "Present a credential (simulated reader)"),
      h("p", { class: "muted small" }, "Goes through the same decision as a real reader: the relay pulses and the event is logged."),
      present, result) : null,
    emergency);
  const offDoor = live.on("door", (d) => { const c = cards.get(d.id); if (c) c.update(d); });
  // an input or an operator changed the emergency state: show it without a reload
  const offEvent = live.on("event", async (e) => {
    if (e.type !== "emergency" && e.type !== "alarm" && !["input_active", "input_inactive"].includes(e.action)) return;
    const fresh = await api("GET", "/doors");
    put(emergencyState, emergencyPanelParts(fresh.emergency));
  });
  return () => { offDoor(); offEvent(); };
}

// -- hardware ---------------------------------------------------------------------------------

const BUS_STATS = ["requests", "responses", "timeouts", "crc_errors", "retries", "failures"];

function busStats(bus) {
  const boards = Object.values(bus.boards || {});
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "address"), BUS_STATS.map((k) => h("th", {}, k.replaceAll("_", " "))), h("th", {}, "state"))),
    h("tbody", {}, boards.length === 0
      ? h("tr", {}, h("td", { colSpan: BUS_STATS.length + 2, class: "muted" }, "No traffic yet."))
      : boards.map((st) => h("tr", {}, h("td", {}, fmt(st.address)), BUS_STATS.map((k) => h("td", {}, fmt(st[k]))),
        h("td", {}, badge(st.online ? "online" : "offline")))))));
}

// site.toml tables the setup editor shows: [column, kind]; other keys of a row are kept as they are.
const SETUP_TABLES = {
  door: [["id"], ["name"], ["relay"], ["contact"], ["exit_button"], ["pulse_ms", "int"], ["held_open_s", "int"], ["fail_mode"], ["methods", "list"]],
  reader: [["id"], ["door"], ["type"], ["direction"]],
  output: [["id"], ["relay"], ["function"], ["floor"], ["building"]],
  input: [["id"], ["input"], ["function"], ["active"]],
};
const SETUP_TITLES = { door: "Doors", reader: "Readers", output: "Outputs", input: "Inputs" };

function configEditor(table, rows) {
  const columns = SETUP_TABLES[table];
  const body = h("tbody");
  const addRow = (r = {}) => {
    const tr = h("tr", {}, columns.map(([c, kind]) => h("td", {},
      h("input", { name: c, value: r[c] === undefined || r[c] === null ? "" : (Array.isArray(r[c]) ? r[c].join(", ") : String(r[c])), "aria-label": `${table} ${c}`, dataset: { kind: kind || "text" } }))),
      h("td", {}, h("button", { type: "button", "aria-label": "Remove", onclick: () => tr.remove() }, "✕")));
    tr.original = r;
    body.append(tr);
  };
  rows.forEach(addRow);
  const read = () => [...body.rows].map((tr) => {
    const out = { ...tr.original };
    for (const input of tr.querySelectorAll("input")) {
      const v = input.value.trim();
      if (v === "") { delete out[input.name]; continue; }
      const kind = input.dataset.kind;
      out[input.name] = kind === "int" ? Number(v) : kind === "list" ? v.split(",").map((x) => x.trim()).filter(Boolean) : v;
    }
    return out;
  }).filter((r) => Object.keys(r).length);
  const el = h("div", {}, h("h3", {}, SETUP_TITLES[table]), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([c]) => h("th", {}, c.replaceAll("_", " "))), h("th"))), body)),
    can("installer") ? h("button", { type: "button", onclick: () => addRow() }, `Add ${SETUP_TITLES[table].toLowerCase().replace(/s$/, "")}`) : null);
  el.read = read;
  return el;
}

async function hardwarePage(root) {
  const hw = await api("GET", "/hardware");
  const config = hw.config || {};
  const buses = hw.buses.map((b) => {
    const found = h("span", { class: "small muted" });
    return h("div", { class: "panel", dataset: { bus: b.id } },
      h("div", { class: "card-head" }, h("h2", {}, b.id), h("span", { class: "mono small" }, `${fmt(b.port)} · ${fmt(b.baudrate)} baud`)),
      busStats(b),
      can("installer") ? h("div", { class: "row" }, h("button", {
        onclick: async (ev) => {
          found.textContent = "scanning addresses 1-247 (about half a minute)…";
          const out = await act(ev.target, () => api("POST", `/buses/${encodeURIComponent(b.id)}/scan`));
          if (out) found.textContent = `found addresses: ${out.addresses.join(", ") || "none"}`;
        },
      }, "Scan bus"), found) : null);
  });
  const boards = hw.boards.map((b) => {
    const channels = Array.from({ length: b.relays || b.channels || 8 }, (_, i) => i + 1);
    const select = h("select", { "aria-label": "Relay channel" }, channels.map((n) => h("option", { value: n }, `relay ${n}`)));
    return h("div", { class: "panel", dataset: { board: b.id } },
      h("div", { class: "card-head" }, h("h2", {}, b.id), badge(b.online ? "online" : "offline")),
      h("p", { class: "muted small" }, `${fmt(b.type)} · ${b.bus ? `bus ${b.bus} · address ${fmt(b.address)}` : fmt(b.host)} · ${fmt(b.relays)} relays, ${fmt(b.inputs)} inputs`),
      can("installer") ? h("div", { class: "row" }, select, h("button", {
        class: "primary",
        onclick: (ev) => act(ev.target, async () => {
          const out = await api("POST", `/relays/${encodeURIComponent(b.id)}/${select.value}/test`, { ms: 500 });
          if (!out.ok) throw new Error(`board ${b.id} did not answer`);
          return out;
        }, `relay ${b.id}:${select.value} pulsed`),
      }, "Test relay")) : null);
  });
  const editors = Object.keys(SETUP_TABLES).map((t) => configEditor(t, config[t] || []));
  const save = can("installer") ? h("button", {
    class: "primary",
    onclick: (ev) => act(ev.target, () => api("PUT", "/hardware", Object.fromEntries(Object.keys(SETUP_TABLES).map((t, i) => [t, editors[i].read()]))),
      "Saved to site.toml; restart the daemon to apply"),
  }, "Save to site.toml") : null;
  put(root, h("h1", {}, "Hardware"),
    h("h2", {}, "Buses"), h("div", { class: "grid wide" }, buses.length ? buses : h("p", { class: "muted" }, "No RS485 bus configured.")),
    h("h2", {}, "Boards"), h("div", { class: "grid wide" }, boards.length ? boards : h("p", { class: "muted" }, "No relay board configured.")),
    await readersPanel(),
    h("section", { class: "panel", id: "site-inputs" }, h("h2", {}, "Inputs"),
      h("p", { class: "muted small" }, "Fire panel, lockdown switch, tamper and alarm contacts ([[input]] in site.toml)."),
      table([{ label: "Input", key: "id" }, { label: "Terminal", key: "input" }, { label: "Function", key: "function" },
        { label: "Active when", key: "active_when" },
        { label: "Now", render: (i) => i.active === null ? "—" : badge(i.active ? "active" : "inactive", i.active ? "bad" : "ok") },
        { label: "Latched", render: (i) => i.latched ? badge("until cleared", "emergency") : "—" }], hw.inputs || [])),
    h("section", { class: "panel" }, h("h2", {}, "Door, reader, output and input setup"),
      h("p", { class: "muted small" }, "Written to site.toml (the old file is kept as site.toml.bak); takes effect after a restart."),
      editors, h("div", { class: "row end" }, save)));
}

// -- logs -------------------------------------------------------------------------------------

const EVENT_COLUMNS = [
  { label: "Time", render: (e) => when(e.at) }, { label: "Type", key: "type" }, { label: "Action", key: "action" },
  { label: "Result", render: (e) => badge(e.result) }, { label: "Reason", key: "reason" }, { label: "Door", key: "door" },
  { label: "Person", key: "person" }, { label: "Method", key: "credential_kind" },
];

async function logsPage(root) {
  const content = h("div");
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const show = async (name) => {
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.tab === name);
    put(content, h("p", { class: "muted" }, "Loading…"));
    await LOG_TABS[name](content);
  };
  for (const name of Object.keys(LOG_TABS)) {
    tabs.append(h("button", { dataset: { tab: name }, onclick: () => show(name) }, name));
  }
  put(root, h("h1", {}, "Logs"), tabs, content);
  await show("Door events");
}

function filterQuery(form) {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (!v) continue;
    q.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  return q;
}

const LOG_TABS = {
  async "Door events"(el) {
    const doors = await api("GET", "/doors");
    const list = h("div");
    const form = h("form", { class: "fields" },
      field("Type", h("select", { name: "type" }, ["", "access", "door", "alarm", "emergency", "system"].map((t) => h("option", { value: t }, t || "any")))),
      field("Result", h("select", { name: "result" }, ["", "success", "failed", "offline"].map((t) => h("option", { value: t }, t || "any")))),
      field("Door", h("select", { name: "door" }, h("option", { value: "" }, "any"), doors.items.map((d) => h("option", { value: d.id }, d.name || d.id)))),
      field("Person", h("input", { name: "person" })),
      field("From", h("input", { name: "since", type: "datetime-local" })),
      field("Until", h("input", { name: "until", type: "datetime-local" })),
      h("button", { class: "primary", type: "submit" }, "Search"));
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
    let cursor = null;
    const load = async (more) => {
      const q = filterQuery(form);
      q.set("limit", "50");
      if (more && cursor) q.set("cursor", cursor);
      const page = await api("GET", `/events?${q}`);
      cursor = page.cursor;
      const rows = more ? [...(list.rows || []), ...page.items] : page.items;
      list.rows = rows;
      put(list, table(EVENT_COLUMNS, rows),
        cursor ? h("button", { onclick: () => load(true) }, "More") : null);
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load(false).catch((e) => toast(errorText(e), true)); });
    put(el, h("section", { class: "panel" }, form, h("div", { class: "row end" }, exportLink("csv"), exportLink("xlsx"))),
      h("section", { class: "panel" }, list));
    await load(false);
  },
  async Audit(el) {
    const page = await api("GET", "/audit?limit=200");
    put(el, h("section", { class: "panel" }, table([
      { label: "Time", render: (e) => when(e.at) }, { label: "Who", key: "actor" }, { label: "Action", key: "action" },
      { label: "Target", key: "target" }, { label: "Detail", key: "detail" }], page.items)));
  },
  async Alarms(el) {
    const page = await api("GET", "/alarms");
    put(el, h("section", { class: "panel" }, table([
      { label: "Time", render: (a) => when(a.at) }, { label: "Alarm", key: "kind" }, { label: "Where", key: "source" },
      { label: "State", render: (a) => (a.resolved ? badge("resolved", "ok") : badge("open")) },
      { label: "", render: (a) => (!a.resolved && can("installer") ? h("button", {
        onclick: async (ev) => { if (await act(ev.target, () => api("POST", `/alarms/${a.id}/resolve`, { note: "" }), "Alarm resolved")) LOG_TABS.Alarms(el); },
      }, "Resolve") : (a.resolved_by || "")) }], page.items)));
  },
};

// -- settings ---------------------------------------------------------------------------------

async function settingsPage(root) {
  const [policy, doors, sync] = await Promise.all([api("GET", "/policy"), api("GET", "/doors"), api("GET", "/sync")]);
  state.sync = sync;
  const st = policy.settings || {};
  const lockout = st.lockout || {};
  const emergencyDoors = new Set((st.emergency || {}).doors || []);
  const readOnly = sync.enrolled || !can("admin");
  const form = h("form", { class: "fields", id: "settings-form" },
    field("PIN mode", h("select", { name: "pin_mode", disabled: readOnly },
      [["pin", "PIN"], ["apt_pin", "Apartment number + PIN"]].map(([v, t]) => h("option", { value: v, selected: st.pin_mode === v }, t)))),
    field("Lockout after failures", h("input", { name: "failures", type: "number", min: 1, value: lockout.failures ?? 5, disabled: readOnly })),
    field("…within seconds", h("input", { name: "window_s", type: "number", min: 1, value: lockout.window_s ?? 60, disabled: readOnly })),
    field("Lock for seconds", h("input", { name: "lock_s", type: "number", min: 1, value: lockout.lock_s ?? 300, disabled: readOnly })),
    field("Temp key max days", h("input", { name: "temp_key_max_days", type: "number", min: 1, value: st.temp_key_max_days ?? 30, disabled: readOnly })));
  const doorChecks = doors.items.map((d) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "emergency", value: d.id, checked: emergencyDoors.has(d.id), disabled: readOnly }), d.name || d.id));
  const save = h("button", {
    class: "primary", disabled: readOnly,
    onclick: (ev) => act(ev.target, async () => {
      const f = new FormData(form);
      const doc = await api("GET", "/policy");
      doc.settings = {
        ...doc.settings,
        pin_mode: f.get("pin_mode") || st.pin_mode,
        temp_key_max_days: Number(f.get("temp_key_max_days")),
        lockout: { failures: Number(f.get("failures")), window_s: Number(f.get("window_s")), lock_s: Number(f.get("lock_s")) },
        emergency: { ...(doc.settings.emergency || {}), doors: doorChecks.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value) },
      };
      return api("PUT", "/policy", doc);
    }, (out) => `Policy saved (version ${out.version})`),
  }, "Save settings");
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  put(root, h("h1", {}, "Settings"),
    sync.enrolled ? h("div", { class: "banner" }, "This site is enrolled with a cloud: settings are managed there and shown read-only.") : null,
    h("section", { class: "panel" }, h("h2", {}, "Site"),
      table([{ label: "Setting", key: "k" }, { label: "Value", key: "v" }], [
        { k: "Site", v: state.health && state.health.site }, { k: "Site time zone", v: state.health && state.health.timezone },
        { k: "This browser's time zone", v: tz }, { k: "Version", v: state.health && state.health.version },
        { k: "Policy version", v: sync.version }, { k: "Policy owner", v: sync.enrolled ? "cloud" : "this site" }])),
    h("section", { class: "panel" }, h("h2", {}, "Access policy settings"), form,
      h("h3", {}, "Emergency door group"), h("div", { class: "row" }, doorChecks), h("div", { class: "row end" }, save)),
    can("admin") ? await accountsPanel() : null);
}

async function accountsPanel() {
  const [users, tokens] = await Promise.all([api("GET", "/users"), api("GET", "/tokens")]);
  const shown = h("div");
  const userForm = h("form", { class: "fields" },
    field("User name", h("input", { name: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", minLength: 12, required: true, autocomplete: "new-password" })),
    field("Role", h("select", { name: "role" }, ["viewer", "installer", "admin"].map((r) => h("option", { value: r }, r)))),
    h("button", { class: "primary", type: "submit" }, "Add user"));
  userForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (await act(ev.submitter, () => api("POST", "/users", Object.fromEntries(new FormData(userForm))), "User added")) location.reload();
  });
  const tokenForm = h("form", { class: "fields" },
    field("Token name", h("input", { name: "name", required: true })),
    field("Role", h("select", { name: "role" }, ["viewer", "installer", "admin"].map((r) => h("option", { value: r }, r)))),
    h("button", { class: "primary", type: "submit" }, "Create token"));
  tokenForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = await act(ev.submitter, () => api("POST", "/tokens", Object.fromEntries(new FormData(tokenForm))));
    if (out) put(shown, h("p", {}, "Copy this token now; it is never shown again:"), h("div", { class: "secret" }, out.token));
  });
  return h("section", { class: "panel" }, h("h2", {}, "Users and API tokens"),
    table([{ label: "User", key: "username" }, { label: "Role", key: "role" }], users.items), userForm,
    h("h3", {}, "API tokens"),
    table([{ label: "Token", key: "name" }, { label: "Role", key: "role" }, { label: "Created", render: (t) => when(t.created * 1000) }], tokens.items),
    tokenForm, shown);
}

export const PAGES = {
  setup: setupPage,
  login: loginPage,
  dashboard: dashboardPage,
  doors: doorsPage,
  hardware: hardwarePage,
  logs: logsPage,
  settings: settingsPage,
  locks: locksPage,
  import: importPage,
  ...Object.fromEntries(Object.keys(ENTITY_PAGES).map((k) => [k, (root) => entityPage(root, k)])),
};
