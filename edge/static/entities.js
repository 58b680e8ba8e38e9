// The policy entity pages (people, apartments, credentials, ...) from one field table each:
// a search box and page controls over the server's ?q=&limit=&offset= (20,000 people stay
// on the server), an editor, deletion after a confirmation.
import { act, api, confirmDialog, debounce, declared, field, put, can, errorText, fmt, h, pageControls, state, table, toast } from "./lib.js";
import { tempKeyForm, readTempKeyForm, tempKeyColumns } from "./tempkeys.js";

// Enumerations come from the served OpenAPI document (one definition, in the server).
const ENUMS = { CredentialKind: [] };
let enumsLoaded = null;
function loadEnums() {
  enumsLoaded ??= api("GET", "/openapi.json").then((doc) => {
    for (const name of Object.keys(ENUMS)) ENUMS[name].push(...(doc.components.schemas[name]?.enum || []));
  }).catch((err) => { enumsLoaded = null; throw err; });
  return enumsLoaded;
}
const list = (v) => (v ? v.split(",").map((x) => x.trim()).filter(Boolean) : []);

// field: [path, label, type, options]; type: text|select|list|bool|int|secret|datetime
export const ENTITY_PAGES = {
  people: {
    one: "person", title: "People", write: "admin",
    fields: [["id", "Id", "text"], ["name", "Name", "text"], ["kind", "Kind", "select", ["resident", "staff", "delivery"]],
      ["apartment", "Apartment", "ref", "apartments"], ["role", "Role in apartment", "select", ["", "master", "member"]],
      ["groups", "Access groups (comma separated)", "list"], ["valid_until", "Valid until", "datetime"], ["active", "Active", "bool"]],
    columns: ["id", "name", "kind", "apartment", "groups"],
  },
  apartments: {
    one: "apartment", title: "Apartments", write: "admin",
    fields: [["id", "Id", "text"], ["building", "Building", "ref", "buildings"], ["number", "Number", "text"], ["floor", "Floor", "text"],
      ["name", "Name", "text"], ["valid_from", "Lease from", "datetime"], ["valid_until", "Lease until", "datetime"], ["auto_delete", "Remove residents when the lease ends", "bool"]],
    columns: ["id", "building", "number", "floor", "name", "valid_until"],
  },
  buildings: {
    one: "building", title: "Buildings", write: "admin",
    fields: [["id", "Id", "text"], ["name", "Name", "text"]],
    columns: ["id", "name"],
  },
  credentials: {
    one: "credential", title: "Credentials", write: "installer",
    fields: [["id", "Id", "text"], ["person", "Person", "ref", "people"], ["kind", "Kind", "select", ENUMS.CredentialKind],
      ["value", "Value (PIN, card number, plate)", "secret"], ["label", "Label", "text"], ["active", "Active", "bool"]],
    columns: ["id", "person", "kind", "label"],
  },
  groups: {
    one: "access group", title: "Access groups", write: "admin",
    fields: [["id", "Id", "text"], ["name", "Name", "text"], ["doors", "Doors (comma separated)", "list"],
      ["schedule.repeat", "Repeats", "select", ["daily", "weekly", "never"]], ["schedule.days", "Days (weekly: mon,tue,...)", "list"],
      ["schedule.start", "From", "text"], ["schedule.end", "Until", "text"]],
    columns: ["id", "name", "doors", "building_default"],
    blank: () => ({ schedule: { repeat: "daily", start: "00:00", end: "23:59" } }),
  },
  "temp-keys": {
    one: "temp key", title: "Temp keys", write: "admin", kind: "temp_keys",
    fields: [["id", "Id", "text"], ["name", "Name", "text"], ["apartment", "Apartment", "ref", "apartments"], ["kind", "Kind", "select", ["pin", "qr"]],
      ["code", "Code (PIN: 8 digits starting with 9)", "secret"], ["doors", "Doors (comma separated)", "list"],
      ["uses_per_door", "Uses per door", "int"], ["schedule.repeat", "Repeats", "select", ["never", "daily", "weekly"]],
      ["schedule.start", "From", "text"], ["schedule.end", "Until", "text"]],
    columns: ["id", "name", "apartment", "kind", "doors", "uses_per_door"],
    form: (entity, isNew, readOnly, refs) => tempKeyForm(entity, isNew, readOnly, state.doors || [], refs.apartments),
    read: (form, entity) => readTempKeyForm(form, entity),
    columnsOf: () => tempKeyColumns(),
  },
  reservations: {
    one: "reservation", title: "Reservations", write: "admin",
    fields: [["id", "Id", "text"], ["door", "Amenity door", "text"], ["person", "Person", "ref", "people"],
      ["start", "Start", "datetime"], ["end", "End", "datetime"]],
    columns: ["id", "door", "person", "start", "end"],
  },
};

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}
function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] = o[k] && typeof o[k] === "object" ? o[k] : {};
  const last = keys[keys.length - 1];
  if (value === undefined) delete o[last]; else o[last] = value;
}

// A reference to another list: a select when the list is short, else a searchable input
// (typed text is looked up on the server: a site may have 20,000 people).
const REF_SELECT_MAX = 500;
async function loadRefs(spec) {
  const needs = [...new Set(spec.fields.filter((f) => f[2] === "ref").map((f) => f[3]))];
  return Object.fromEntries(await Promise.all(needs.map(async (r) => {
    const page = await api("GET", `/${r}?limit=${REF_SELECT_MAX}`);
    return [r, (page.total ?? page.items.length) > page.items.length ? null : page.items];
  })));
}

function refSearch(common, value, target) {
  const listId = `refs-${common.name}`;
  const options = h("datalist", { id: listId });
  const el = h("input", { ...common, value: value ?? "", autocomplete: "off", placeholder: "type to search", list: listId });
  el.setAttribute("list", listId);
  el.addEventListener("input", debounce(async () => {
    const q = el.value.trim();
    if (!q) return;
    const page = await api("GET", `/${target}?q=${encodeURIComponent(q)}&limit=20`).catch(() => ({ items: [] }));
    put(options, page.items.map((r) => h("option", { value: r.id }, r.name ? `${r.name} (${r.id})` : r.id)));
  }));
  return [el, options];
}

function input(fieldSpec, entity, refs, readOnly) {
  const [path, label, type, opt] = fieldSpec;
  const value = getPath(entity, path);
  const common = { name: path, disabled: readOnly || (path === "id" && entity.id !== undefined) };
  let el;
  if (type === "select") {
    el = h("select", common, opt.map((o) => h("option", { value: o, selected: (value ?? "") === o }, o || "—")));
  } else if (type === "ref" && refs[opt] === null) {
    const [el2, options] = refSearch(common, value, opt);
    const wrap = field(label, el2);
    wrap.append(options);
    return wrap;
  } else if (type === "ref") {
    el = h("select", common, h("option", { value: "" }, "—"),
      (refs[opt] || []).map((r) => h("option", { value: r.id, selected: value === r.id }, r.name ? `${r.name} (${r.id})` : r.id)));
  } else if (type === "bool") {
    return h("label", { class: "check" }, h("input", { ...common, type: "checkbox", checked: value !== false }), label);
  } else if (type === "secret") {
    const stored = entity.value_hmac || entity.code_hmac;
    el = h("input", { ...common, type: "password", autocomplete: "off", placeholder: stored ? "•••• stored (type to replace)" : "" });
  } else if (type === "list") {
    el = h("input", { ...common, value: (value || []).join(", ") });
  } else {
    el = h("input", { ...common, type: type === "int" ? "number" : "text", value: value ?? "", placeholder: type === "datetime" ? "2027-01-31T00:00:00" : "" });
  }
  return field(label, el);
}

function readForm(form, fields, base) {
  const out = structuredClone(base);
  for (const [path, , type] of fields) {
    const el = form.elements[path];
    if (!el || (path === "id" && base.id !== undefined)) continue;
    let v;
    if (type === "bool") v = el.checked;
    else if (type === "list") v = list(el.value);
    else if (type === "int") v = el.value === "" ? null : Number(el.value);
    else if (type === "secret") {
      if (el.value === "") continue; // keep the stored hash
      v = el.value;
      delete out.value_hmac; delete out.duress_hmac; delete out.code_hmac;
    } else v = el.value === "" ? undefined : el.value;
    if (path === "schedule.days" && (!v || v.length === 0)) v = undefined;
    setPath(out, path, v);
  }
  return out;
}

async function captureCard(form, refs, note) {
  const reader = form.querySelector("[name=capture-reader]").value;
  note.textContent = `Present the card at ${reader} now…`;
  try {
    const out = await api("POST", `/readers/${encodeURIComponent(reader)}/capture`, { timeout_s: 30 });
    if (out.known) {
      note.textContent = `This card is already enrolled (${out.credential}).`;
      return;
    }
    form.dataset.captured = out.value_hmac;
    if (!["rf_card", "uhf_card"].includes(form.elements.kind.value)) form.elements.kind.value = "rf_card";
    note.textContent = "Card read (****). Save to enrol it.";
  } catch (err) {
    note.textContent = errorText(err);
  }
  void refs;
}


/** The editor of one entity (new or existing); ``done()`` after a save or a delete. */
export function entityEditor(segment, entity, isNew, { refs, readOnly, done, close }) {
  const spec = ENTITY_PAGES[segment];
  const kind = spec.kind || segment;
  const error = h("p", { class: "error", role: "alert" });
  const form = spec.form
    ? spec.form(entity, isNew, readOnly, refs)
    : h("form", { class: "fields", id: "entity-form" }, spec.fields.map((f) => input(f, entity, refs, readOnly)));
  form.id = "entity-form";
  const buttons = h("div", { class: "row end" });
  if (kind === "credentials" && !readOnly) {
    const note = h("span", { class: "small muted", id: "capture-note" });
    form.append(h("div", { class: "row" },
      field("Reader", h("select", { name: "capture-reader" }, (state.readers || []).map((r) => h("option", { value: r.id }, r.id)))),
      h("button", { type: "button", onclick: () => captureCard(form, refs, note) }, "Present a card now"), note));
  }
  if (!readOnly) {
    buttons.append(h("button", { class: "primary", type: "submit", form: "entity-form" }, isNew ? "Create" : "Save"));
    if (!isNew) {
      buttons.append(h("button", {
        class: "danger", type: "button",
        onclick: async (ev) => {
          const extra = kind === "people" ? " Their credentials are deleted with them." : "";
          if (!(await confirmDialog(`Delete ${spec.one} ${entity.id}?`, `This cannot be undone.${extra}`, "Delete"))) return;
          if (await act(ev.target, () => api("DELETE", `/${segment}/${encodeURIComponent(entity.id)}`).then(() => true), `${entity.id} deleted`)) done(null);
        },
      }, "Delete"));
    }
  }
  buttons.append(h("button", { type: "button", onclick: close }, "Close"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const body = spec.read ? spec.read(form, entity) : readForm(form, spec.fields, entity);
    if (form.dataset.captured) { body.value_hmac = form.dataset.captured; delete body.value; delete body.duress_hmac; }
    try {
      if (isNew) await api("POST", `/${segment}`, body);
      else await api("PUT", `/${segment}/${encodeURIComponent(entity.id)}`, body);
      toast(`${body.id} saved`);
      done(body);
    } catch (err) {
      error.textContent = errorText(err);
    }
  });
  return h("section", { class: "panel" }, h("h2", {}, isNew ? `New ${spec.one}` : `${spec.one[0].toUpperCase()}${spec.one.slice(1)} ${entity.id}`), form, error, buttons);
}

export async function entityContext(segment) {
  await loadEnums();
  const spec = ENTITY_PAGES[segment];
  const [sync, refs] = await Promise.all([api("GET", "/sync"), loadRefs(spec)]);
  state.sync = sync;
  if ((spec.kind || segment) === "credentials" && !state.readers) state.readers = (await api("GET", "/hardware")).readers;
  if (spec.form && !state.doors) state.doors = (await api("GET", "/doors")).items;
  return { sync, refs, readOnly: sync.enrolled || !can(spec.write) };
}

const PAGE_SIZE = 50;

// Filters next to the search box, offered when the server declares them for GET /<kind>
// (the property-manager engineer's contract); [param, label, choices or null].
const FILTERS = {
  people: [["building", "Building"], ["apartment", "Apartment"], ["group", "Group"]],
  credentials: [["holder", "Holder"], ["person", "Person id"], ["building", "Building"], ["apartment", "Apartment"], ["kind", "Kind", () => ENUMS.CredentialKind]],
  apartments: [["building", "Building"]],
  "temp-keys": [["valid", "Valid", () => ["now", "expired", "future"]], ["repeat", "Repeats", () => ["never", "daily", "weekly"]],
    ["creator", "Creator"], ["visitor", "Visitor"], ["apartment", "Apartment"]],
};

async function filterFields(segment) {
  const params = await declared(`/${segment}`);
  return (FILTERS[segment] || []).filter(([p]) => params && params.has(p)).map(([p, label, choices]) => field(label, choices
    ? h("select", { name: p }, h("option", { value: "" }, "any"), choices().map((c) => h("option", { value: c }, c)))
    : h("input", { name: p, autocomplete: "off" })));
}

export async function entityPage(root, segment) {
  const spec = ENTITY_PAGES[segment];
  const kind = spec.kind || segment;
  const { sync, refs, readOnly } = await entityContext(segment);
  const editor = h("div");
  const listing = h("div", { id: "entity-list" });
  let offset = 0;
  const filters = await filterFields(segment);
  const search = h("input", { type: "search", name: "q", placeholder: `Search ${spec.title.toLowerCase()}`, "aria-label": `Search ${spec.title.toLowerCase()}`, autocomplete: "off" });

  const openEditor = (entity, isNew) => {
    put(editor, entityEditor(segment, entity, isNew, {
      refs, readOnly, close: () => put(editor),
      done: () => { put(editor); load(); },
    }));
    editor.scrollIntoView({ block: "nearest" });
  };
  const columns = (spec.columnsOf ? spec.columnsOf() : spec.columns.map((c) => ({ label: c.replaceAll("_", " "), render: (r) => fmt(getPath(r, c)) })));
  if (kind === "credentials") {
    columns[1] = { label: "person", render: (r) => (r.person ? h("a", { href: `#/people/${encodeURIComponent(r.person)}`, onclick: (ev) => ev.stopPropagation() }, r.person_name ? `${r.person_name} (${r.person})` : r.person) : "—") };
    columns.push({ label: "value", render: () => "****" });
  }
  if (kind === "people") columns[0] = { label: "id", render: (r) => h("a", { href: `#/people/${encodeURIComponent(r.id)}`, onclick: (ev) => ev.stopPropagation() }, r.id) };
  const onRow = kind === "people" ? (r) => { location.hash = `#/people/${encodeURIComponent(r.id)}`; } : (r) => openEditor(r, false);

  let asked = 0;
  const load = async () => {
    const mine = ++asked;
    const q = search.value.trim();
    const started = performance.now();
    const params = new URLSearchParams({ limit: PAGE_SIZE, offset });
    if (q) params.set("q", q);
    for (const f of filters) {
      const el = f.querySelector("input, select");
      if (el.value.trim()) params.set(el.name, el.value.trim());
    }
    const page = await api("GET", `/${segment}?${params}`);
    if (mine !== asked) return; // a newer search answered first
    put(listing, pageControls(offset, PAGE_SIZE, page.items.length, page.total, (o) => { offset = o; load(); }),
      table(columns, page.items, onRow));
    listing.dataset.ms = String(Math.round(performance.now() - started));
    listing.dataset.q = q;
  };
  const again = debounce(() => { offset = 0; load().catch((e) => toast(errorText(e), true)); }, 250);
  search.addEventListener("input", again);
  for (const f of filters) f.addEventListener(f.querySelector("select") ? "change" : "input", again);

  put(root,
    h("div", { class: "card-head" }, h("h1", {}, spec.title),
      readOnly ? null : h("button", { class: "primary", id: "new-entity", onclick: () => openEditor(spec.blank ? spec.blank() : {}, true) }, "New")),
    sync.enrolled ? h("div", { class: "banner", id: "cloud-banner" }, "This site is enrolled with a cloud, which owns people, credentials and groups. Edit them in the cloud; this view is read-only.") : null,
    editor,
    h("section", { class: "panel" },
      h("form", { class: "filter-bar row", role: "search", onsubmit: (ev) => { ev.preventDefault(); offset = 0; load(); } }, search, filters),
      listing));
  await load();
}
