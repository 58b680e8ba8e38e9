// Third-party locks: which PINs and RF cards a lock family (Dormakaba, iTec) cannot take,
// and why (GET /locks/{family}/report, docs/property-manager.md). Read-only for everyone:
// the doors of each family are the policy's settings.lock_families.
import { api, field, h, put, table } from "./lib.js";

const FAMILIES = [["dormakaba", "Dormakaba"], ["itec", "iTec"]];

export async function locksPage(root) {
  const out = h("div");
  const picker = h("select", { name: "family", id: "lock-family" },
    FAMILIES.map(([v, t]) => h("option", { value: v }, t)));
  const show = async () => {
    const r = await api("GET", `/locks/${encodeURIComponent(picker.value)}/report`);
    const rules = Object.entries(r.rules).map(([kind, text]) => h("li", {}, `${kind}: ${text}`));
    put(out,
      h("section", { class: "panel" },
        h("p", {}, r.doors.length ? `Doors: ${r.doors.join(", ")}` : "No door has this lock family yet (policy settings: lock_families)."),
        h("ul", { class: "small" }, rules),
        h("p", { id: "lock-summary" }, `${r.checked} checked, ${r.unsyncable.length} cannot be synced`)),
      h("section", { class: "panel" }, table([
        { label: "Credential", key: "credential" }, { label: "Holder", render: (u) => u.holder || u.person },
        { label: "Apartment", key: "apartment" }, { label: "Kind", key: "kind" },
        { label: "Value", key: "masked" }, { label: "Why", key: "reason" }], r.unsyncable)));
  };
  picker.addEventListener("change", show);
  put(root, h("h1", {}, "Third-party locks"),
    h("section", { class: "panel" }, h("div", { class: "fields" }, field("Lock family", picker))), out);
  await show();
}
