// The hardware page: buses, boards, site inputs and the site.toml setup editor.
import { readersPanel } from "./readers.js";
import { act, api, badge, can, fmt, h, put, table } from "./lib.js";

const BUS_STATS = ["requests", "responses", "timeouts", "crc_errors", "retries", "failures"];

function busStats(bus) {
  const boards = Object.values(bus.boards || {});
  return h("div", { class: "table-wrap" }, h("table", { class: "compact" },
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
  const edit = can("installer"); // a viewer reads the setup; no field of it is editable
  const addRow = (r = {}) => {
    const tr = h("tr", {}, columns.map(([c, kind]) => h("td", { dataset: { label: c.replaceAll("_", " ") } },
      h("input", { name: c, value: r[c] === undefined || r[c] === null ? "" : (Array.isArray(r[c]) ? r[c].join(", ") : String(r[c])), "aria-label": `${table} ${c}`, dataset: { kind: kind || "text" }, readOnly: !edit, disabled: !edit }))),
      edit ? h("td", {}, h("button", { type: "button", "aria-label": "Remove", onclick: () => tr.remove() }, "✕")) : null);
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
  const el = h("div", {}, h("h3", {}, SETUP_TITLES[table]), h("div", { class: "table-wrap" }, h("table", { class: "editor" },
    h("thead", {}, h("tr", {}, columns.map(([c]) => h("th", {}, c.replaceAll("_", " "))), edit ? h("th") : null)), body)),
    edit ? h("button", { type: "button", onclick: () => addRow() }, `Add ${SETUP_TITLES[table].toLowerCase().replace(/s$/, "")}`) : null);
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
    h("h2", {}, "Buses"), h("div", { class: "grid one" }, buses.length ? buses : h("p", { class: "muted" }, "No RS485 bus configured.")),
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

export { hardwarePage };
