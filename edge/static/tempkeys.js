// The temp-key form: date-time pickers (the site's wall clock), weekly days, a door picker.
// Temp-key times are site-local wall-clock times without an offset (POLICY.md), which is
// exactly what a datetime-local or time input holds: no conversion, only the zone label.
import { field, fmt, h, siteLocal, siteZone } from "./lib.js";

const DAYS = [["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"]];

/** "2026-11-17T13:54:00" -> "2026-11-17T13:54" (a datetime-local value). */
function localValue(text) {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})/.exec(text || "");
  return m ? `${m[1]}T${m[2]}` : "";
}

function defaultWindow() {
  const now = new Date();
  const start = new Date(now.getTime() + 5 * 60000);
  const end = new Date(start.getTime() + 24 * 3600000);
  return [siteLocal(start), siteLocal(end)];
}

export function tempKeyForm(entity, isNew, readOnly, doors, apartments) {
  const sched = entity.schedule || { repeat: "never" };
  const [defStart, defEnd] = defaultWindow();
  const zone = siteZone();
  const dis = readOnly;
  const repeat = h("select", { name: "repeat", disabled: dis },
    [["never", "Once (from - until)"], ["daily", "Every day"], ["weekly", "Weekly on chosen days"]].map(([v, t]) => h("option", { value: v, selected: (sched.repeat || "never") === v }, t)));
  const once = sched.repeat === "never" || !sched.repeat;
  const onceFields = h("div", { class: "row span-all", dataset: { when: "never" } },
    field(`From (${zone})`, h("input", { name: "start_at", type: "datetime-local", value: once ? localValue(sched.start) || defStart : defStart, disabled: dis })),
    field(`Until (${zone})`, h("input", { name: "end_at", type: "datetime-local", value: once ? localValue(sched.end) || defEnd : defEnd, disabled: dis })));
  const timeFields = h("div", { class: "row span-all", dataset: { when: "daily weekly" } },
    field(`Daily from (${zone})`, h("input", { name: "start_time", type: "time", value: once ? "08:00" : (sched.start || "08:00").slice(0, 5), disabled: dis })),
    field(`Daily until (${zone})`, h("input", { name: "end_time", type: "time", value: once ? "18:00" : (sched.end || "18:00").slice(0, 5), disabled: dis })));
  const days = new Set(sched.days || ["mon", "tue", "wed", "thu", "fri"]);
  const dayFields = h("fieldset", { class: "span-all days", dataset: { when: "weekly" } }, h("legend", {}, "Days"),
    DAYS.map(([v, t]) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "days", value: v, checked: days.has(v), disabled: dis }), t)));
  const chosen = new Set(entity.doors || []);
  const doorFields = h("fieldset", { class: "span-all doors" }, h("legend", {}, "Doors"),
    doors.map((d) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "doors", value: d.id, checked: chosen.has(d.id), disabled: dis }), d.name || d.id)));
  const apt = apartments
    ? h("select", { name: "apartment", disabled: dis }, h("option", { value: "" }, "—"),
      apartments.map((a) => h("option", { value: a.id, selected: entity.apartment === a.id }, a.name ? `${a.name} (${a.id})` : a.id)))
    : h("input", { name: "apartment", value: entity.apartment || "", disabled: dis });
  const form = h("form", { class: "fields temp-key-form" },
    field("Id", h("input", { name: "id", value: entity.id || "", required: true, disabled: dis || !isNew })),
    field("Name", h("input", { name: "name", value: entity.name || "", disabled: dis })),
    field("Apartment", apt),
    field("Kind", h("select", { name: "kind", disabled: dis }, ["pin", "qr"].map((k) => h("option", { value: k, selected: (entity.kind || "pin") === k }, k)))),
    field("Code (PIN: 8 digits starting with 9)", h("input", { name: "code", type: "password", autocomplete: "off", disabled: dis, placeholder: entity.code_hmac ? "•••• stored (type to replace)" : "" })),
    field("Uses per door (empty: unlimited)", h("input", { name: "uses_per_door", type: "number", min: 1, value: entity.uses_per_door ?? "", disabled: dis })),
    field("Repeats", repeat), onceFields, timeFields, dayFields, doorFields);
  const showFor = () => {
    for (const el of form.querySelectorAll("[data-when]")) el.hidden = !el.dataset.when.split(" ").includes(repeat.value);
  };
  repeat.addEventListener("change", showFor);
  showFor();
  return form;
}

export function readTempKeyForm(form, entity) {
  const f = new FormData(form);
  const out = structuredClone(entity);
  if (!entity.id) out.id = (f.get("id") || "").trim();
  out.name = f.get("name") || undefined;
  out.apartment = f.get("apartment") || undefined;
  out.kind = f.get("kind");
  if (f.get("code")) { out.code = f.get("code"); delete out.code_hmac; }
  const uses = f.get("uses_per_door");
  out.uses_per_door = uses === "" || uses === null ? null : Number(uses);
  out.doors = f.getAll("doors");
  const repeat = f.get("repeat");
  if (repeat === "never") {
    out.schedule = { repeat, start: `${f.get("start_at")}:00`, end: `${f.get("end_at")}:00` };
  } else {
    out.schedule = { repeat, start: `${f.get("start_time")}:00`, end: `${f.get("end_time")}:00` };
    if (repeat === "weekly") out.schedule.days = f.getAll("days");
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

/** "2026-11-17 13:54 - 2026-11-18 13:54" or "weekly mon,fri 08:00-18:00". */
function validity(sched) {
  if (!sched) return "—";
  const t = (v) => (v || "").replace("T", " ").slice(0, 16);
  if (sched.repeat === "never") return `${t(sched.start)} - ${t(sched.end)}`;
  const days = sched.repeat === "weekly" ? ` ${(sched.days || []).join(",")}` : "";
  return `${sched.repeat}${days} ${(sched.start || "").slice(0, 5)}-${(sched.end || "").slice(0, 5)}`;
}

export function tempKeyColumns() {
  return [
    { label: "id", render: (r) => r.id }, { label: "name", render: (r) => fmt(r.name) },
    { label: "apartment", render: (r) => fmt(r.apartment) }, { label: "kind", render: (r) => r.kind },
    { label: "doors", render: (r) => fmt(r.doors) }, { label: `valid (${siteZone()})`, render: (r) => validity(r.schedule) },
    { label: "uses per door", render: (r) => fmt(r.uses_per_door) },
  ];
}
