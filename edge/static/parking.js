// The car parks card of the dashboard (GET /api/v1/parking): an occupancy bar per lot and
// the vehicles inside with their since-time. Refreshes itself when an access event counted
// a vehicle (its detail carries "parking"); hidden on a site without [[parking]] lots.
import { api, h, live, put, table, when } from "./lib.js";

function lotView(lot) {
  const full = lot.occupied >= lot.capacity;
  const meter = h("meter", {
    class: "occupancy", min: 0, max: lot.capacity, value: Math.min(lot.occupied, lot.capacity),
    low: lot.capacity * 0.7, high: lot.capacity * 0.9, optimum: 0, // green, amber, red
    title: `${lot.occupied} of ${lot.capacity} spaces taken`,
  });
  return h("div", { class: "parking-lot", dataset: { lot: lot.id } },
    h("div", { class: "card-head" },
      h("strong", {}, lot.name || lot.id),
      h("span", { class: `badge ${full ? "offline" : "online"}` },
        `${lot.occupied} / ${lot.capacity}${full ? " full" : ""}`)),
    meter,
    h("p", { class: "muted small" },
      `${Math.max(0, lot.capacity - lot.occupied)} free · when full: ${lot.when_full === "refuse" ? "refuse entry" : "allow and alarm"}`),
    table([
      { label: "Vehicle of", render: (v) => v.person || v.temp_key || "—" },
      { label: "Credential", render: (v) => v.credential || (v.temp_key ? "temp key" : "—") },
      { label: "Since", render: (v) => when(v.since) },
    ], lot.vehicles));
}

/** The parking panel: an element that fills itself from the API (nothing when no lots). */
export function parkingPanel() {
  const el = h("section", { class: "panel", id: "parking", hidden: true });
  const load = async () => {
    const { items } = await api("GET", "/parking");
    el.hidden = items.length === 0;
    put(el, h("h2", {}, "Parking"), items.map(lotView));
  };
  const off = live.on("event", (e) => {
    if (!el.isConnected) { off(); return; }
    if (e.detail && e.detail.parking) load().catch(() => {});
  });
  load().catch(() => { el.hidden = true; });
  return el;
}
