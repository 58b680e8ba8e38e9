// The doors page: live door cards, the simulated reader, the emergency controls.
import { act, api, badge, can, confirmDialog, field, fmt, h, live, put, table } from "./lib.js";

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
  const names = new Map(doors.items.map((d) => [d.id, d.name || d.id]));
  const doorList = (ids) => ids.map((i) => names.get(i) || i).join(", ") || "none";
  // Emergency unlock and lockdown are asked for first; the outcome names every door it touched.
  const emergencyAction = (action, title, body, okText, done) => async (ev) => {
    if (body && !(await confirmDialog(title, body, okText))) return;
    const out = await act(ev.target, () => api("POST", "/emergency", { action }), (em) => done(em));
    if (out) put(emergencyState, emergencyPanelParts(out));
  };
  const emergency = h("section", { class: "panel" }, h("h2", {}, "Emergency"), emergencyState, can("admin") ? h("div", {},
    h("p", { class: "muted small" }, "Unlock the emergency door group, lock down (only staff may enter), or return to normal. What an input started stays until you clear it."),
    h("div", { class: "row" },
      h("button", { class: "danger", onclick: emergencyAction("unlock", "Emergency unlock?",
        [doors.emergency && doors.emergency.group
          ? `These doors unlock and stay unlocked until you clear it: ${doorList(doors.emergency.group)}.`
          : "Every door of the emergency group unlocks and stays unlocked until you clear it.", "Anyone can then walk in."],
        "Unlock the doors", (em) => `Emergency unlock: ${doorList(em.unlocked)}`) }, "Emergency unlock"),
      h("button", { onclick: emergencyAction("lockdown", "Lock down the site?",
        [`Every door locks: ${doorList(doors.items.map((d) => d.id))}.`, "Only staff credentials open them until you clear the lockdown."],
        "Lock down", () => `Lockdown: ${doorList(doors.items.map((d) => d.id))}`) }, "Lockdown"),
      h("button", { onclick: emergencyAction("clear", "", null, "", () => "Back to normal") }, "Clear"))) : null);
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

export { doorsPage };
