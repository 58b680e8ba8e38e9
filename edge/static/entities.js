// The policy entity pages (people, apartments, credentials, ...) from one field table each.
import { act, api, field, put, can, errorText, fmt, h, state, table, toast } from "./lib.js";

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
  },
  "temp-keys": {
    one: "temp key", title: "Temp keys", write: "admin", kind: "temp_keys",
    fields: [["id", "Id", "text"], ["name", "Name", "text"], ["apartment", "Apartment", "ref", "apartments"], ["kind", "Kind", "select", ["pin", "qr"]],
      ["code", "Code (PIN: 8 digits starting with 9)", "secret"], ["doors", "Doors (comma separated)", "list"],
      ["uses_per_door", "Uses per door", "int"], ["schedule.repeat", "Repeats", "select", ["never", "daily", "weekly"]],
      ["schedule.start", "From", "text"], ["schedule.end", "Until", "text"]],
    columns: ["id", "name", "apartment", "kind", "doors", "uses_per_door"],
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

function input(fieldSpec, entity, refs, readOnly) {
  const [path, label, type, opt] = fieldSpec;
  const value = getPath(entity, path);
  const common = { name: path, disabled: readOnly || (path === "id" && entity.id !== undefined) };
  let el;
  if (type === "select") {
    el = h("select", common, opt.map((o) => h("option", { value: o, selected: (value ?? "") === o }, o || "—")));
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

export async function entityPage(root, segment) {
  await loadEnums();
  const spec = ENTITY_PAGES[segment];
  const kind = spec.kind || segment;
  const [items, sync] = await Promise.all([api("GET", `/${segment}`), api("GET", "/sync")]);
  state.sync = sync;
  const refNeeds = [...new Set(spec.fields.filter((f) => f[2] === "ref").map((f) => f[3]))];
  const refs = Object.fromEntries(await Promise.all(refNeeds.map(async (r) => [r, (await api("GET", `/${r}`)).items])));
  const readOnly = sync.enrolled || !can(spec.write);
  const editor = h("div");

  const openEditor = (entity, isNew) => {
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "fields", id: "entity-form" }, spec.fields.map((f) => input(f, entity, refs, readOnly)));
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
            if (await act(ev.target, () => api("DELETE", `/${segment}/${encodeURIComponent(entity.id)}`).then(() => true), `${entity.id} deleted`)) entityPage(root, segment);
          },
        }, "Delete"));
      }
    }
    buttons.append(h("button", { type: "button", onclick: () => put(editor) }, "Close"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const body = readForm(form, spec.fields, entity);
      if (form.dataset.captured) { body.value_hmac = form.dataset.captured; delete body.value; delete body.duress_hmac; }
      try {
        if (isNew) await api("POST", `/${segment}`, body);
        else await api("PUT", `/${segment}/${encodeURIComponent(entity.id)}`, body);
        toast(`${body.id} saved`);
        await entityPage(root, segment);
      } catch (err) {
        error.textContent = errorText(err);
      }
    });
    put(editor, h("section", { class: "panel" }, h("h2", {}, isNew ? `New ${spec.one}` : `${spec.one[0].toUpperCase()}${spec.one.slice(1)} ${entity.id}`), form, error, buttons));
    editor.scrollIntoView({ block: "nearest" });
  };

  if (kind === "credentials" && !state.readers) {
    state.readers = (await api("GET", "/hardware")).readers;
  }
  const columns = spec.columns.map((c) => ({ label: c.replaceAll("_", " "), render: (r) => fmt(getPath(r, c)) }));
  if (kind === "credentials") columns.push({ label: "value", render: () => "****" });
  put(root, 
    h("div", { class: "card-head" }, h("h1", {}, spec.title),
      readOnly ? null : h("button", { class: "primary", id: "new-entity", onclick: () => openEditor(kind === "groups" ? { schedule: { repeat: "daily", start: "00:00", end: "23:59" } } : {}, true) }, "New")),
    sync.enrolled ? h("div", { class: "banner", id: "cloud-banner" }, "This site is enrolled with a cloud, which owns people, credentials and groups. Edit them in the cloud; this view is read-only.") : null,
    editor,
    h("section", { class: "panel" }, table(columns, items.items, (r) => openEditor(r, false))));
}
