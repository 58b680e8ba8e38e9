// One person's page (#/people/ID): credentials (masked), groups, floors, validity, recent events.
import { api, badge, fmt, h, put, table, whenLabelled } from "./lib.js";
import { entityContext, entityEditor } from "./entities.js";
import { eventColumns } from "./logs.js";

const dash = (v) => fmt(v);

function validity(person, apartment) {
  const rows = [
    { k: "Active", v: person.active === false ? badge("inactive", "bad") : badge("active", "ok") },
    { k: "Valid from", v: person.valid_from ? whenLabelled(person.valid_from) : "always" },
    { k: "Valid until", v: person.valid_until ? whenLabelled(person.valid_until) : "no end" },
  ];
  if (apartment) {
    rows.push({ k: "Apartment lease", v: `${apartment.valid_from ? whenLabelled(apartment.valid_from) : "open"} - ${apartment.valid_until ? whenLabelled(apartment.valid_until) : "open"}` });
  }
  return table([{ label: "Validity", key: "k" }, { label: "", render: (r) => r.v }], rows);
}

export async function personPage(root, id) {
  const [person, ctx] = await Promise.all([api("GET", `/people/${encodeURIComponent(id)}`), entityContext("people")]);
  const [creds, groups, events, apartment] = await Promise.all([
    api("GET", `/credentials?q=${encodeURIComponent(id)}&limit=1000`),
    api("GET", "/groups"),
    api("GET", `/events?person=${encodeURIComponent(id)}&limit=20`),
    person.apartment ? api("GET", `/apartments/${encodeURIComponent(person.apartment)}`).catch(() => null) : null,
  ]);
  const mine = creds.items.filter((c) => c.person === id);
  const byId = new Map(groups.items.map((g) => [g.id, g]));
  const myGroups = (person.groups || []).map((g) => byId.get(g) || { id: g, name: "(missing)" });
  const floors = person.floors || (apartment && apartment.floor ? [apartment.floor] : []);
  const editor = h("div");
  const edit = ctx.readOnly ? null : h("button", {
    class: "primary", id: "edit-person",
    onclick: () => put(editor, entityEditor("people", person, false, {
      refs: ctx.refs, readOnly: false, close: () => put(editor),
      done: (saved) => { if (saved) personPage(root, id); else location.hash = "#/people"; },
    })),
  }, "Edit");
  put(root,
    h("div", { class: "card-head" }, h("h1", {}, person.name || person.id), h("div", { class: "row" }, edit, h("a", { class: "button", href: "#/people" }, "All people"))),
    h("p", { class: "muted", id: "person-summary" },
      `${person.id} · ${dash(person.kind)}`, person.apartment ? ` · apartment ${apartment && apartment.name ? `${apartment.name} (${person.apartment})` : person.apartment}` : "",
      person.role ? ` · ${person.role}` : ""),
    editor,
    h("div", { class: "grid wide" },
      h("section", { class: "panel", id: "person-credentials" }, h("h2", {}, "Credentials"),
        table([{ label: "Credential", key: "id" }, { label: "Kind", key: "kind" }, { label: "Label", key: "label" },
          { label: "Value", render: () => "****" },
          { label: "State", render: (c) => badge(c.active === false ? "inactive" : "active", c.active === false ? "bad" : "ok") }], mine)),
      h("section", { class: "panel", id: "person-groups" }, h("h2", {}, "Access groups"),
        table([{ label: "Group", render: (g) => g.name ? `${g.name} (${g.id})` : g.id }, { label: "Doors", key: "doors" },
          { label: "When", render: (g) => (g.schedule ? `${g.schedule.repeat} ${g.schedule.start || ""}-${g.schedule.end || ""}` : "—") }], myGroups)),
      h("section", { class: "panel", id: "person-floors" }, h("h2", {}, "Floors"),
        h("p", {}, floors.length ? floors.join(", ") : "No floor restriction recorded.")),
      h("section", { class: "panel", id: "person-validity" }, h("h2", {}, "Validity"), validity(person, apartment))),
    h("section", { class: "panel", id: "person-events" }, h("h2", {}, "Recent events"),
      table(eventColumns(), events.items),
      h("p", { class: "small" }, h("a", { href: `#/logs?person=${encodeURIComponent(id)}` }, "All events of this person"))));
}
