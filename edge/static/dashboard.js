// The dashboard: counts, today's grants and denials, access by credential type, releases per door.
import { parkingPanel } from "./parking.js";
import { api, badge, fmt, h, put, s, siteHour, siteMidnight, siteZone, table, timeLabel, when } from "./lib.js";

function hourChart(events) {
  const grants = new Array(24).fill(0);
  const denials = new Array(24).fill(0);
  for (const e of events) {
    const hour = siteHour(e.at);
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

// Today's events, newest first, page by page (the list's own cursor); at most ``max`` of them.
async function todaysEvents(max = 5000) {
  const since = encodeURIComponent(siteMidnight());
  const out = [];
  let cursor = "";
  do {
    const page = await api("GET", `/events?since=${since}&limit=1000&cursor=${encodeURIComponent(cursor)}`);
    out.push(...page.items);
    cursor = page.cursor;
  } while (cursor && out.length < max);
  return out;
}

const isRelease = (e) => e.result === "success" && (e.type === "access" || e.action === "remote_unlock");

/** Horizontal bars: door access by credential type (granted and denied). */
function kindChart(events) {
  const counts = new Map();
  for (const e of events) {
    if (e.type !== "access" && e.action !== "remote_unlock") continue;
    const k = e.credential_kind || "unknown";
    const c = counts.get(k) || { granted: 0, denied: 0 };
    c[e.result === "success" ? "granted" : "denied"] += 1;
    counts.set(k, c);
  }
  const rows = [...counts.entries()].sort((a, b) => (b[1].granted + b[1].denied) - (a[1].granted + a[1].denied));
  const max = Math.max(1, ...rows.map(([, c]) => c.granted + c.denied));
  if (rows.length === 0) return h("p", { class: "muted", id: "kind-chart" }, "No access today.");
  return h("div", { class: "bars", id: "kind-chart" }, rows.map(([kind, c]) => h("div", { class: "bar-row", dataset: { kind } },
    h("span", { class: "bar-label" }, kind.replaceAll("_", " ")),
    h("span", { class: "bar-track" },
      h("span", { class: "bar grant", style: `width:${(c.granted / max) * 100}%`, title: `granted ${c.granted}` }),
      h("span", { class: "bar deny", style: `width:${(c.denied / max) * 100}%`, title: `denied ${c.denied}` })),
    h("span", { class: "bar-value" }, `${c.granted} / ${c.denied}`))));
}

/** A heat map: door releases (granted access, remote unlocks) per door and site hour. */
function releaseMap(events, doors) {
  const names = new Map(doors.map((d) => [d.id, d.name || d.id]));
  const grid = new Map(doors.map((d) => [d.id, new Array(24).fill(0)]));
  for (const e of events) {
    if (!isRelease(e) || !e.door) continue;
    if (!grid.has(e.door)) grid.set(e.door, new Array(24).fill(0));
    grid.get(e.door)[siteHour(e.at)] += 1;
  }
  const max = Math.max(1, ...[...grid.values()].flat());
  const hours = Array.from({ length: 24 }, (_, i) => i);
  return h("div", { class: "heat-wrap" }, h("table", { class: "heat", id: "release-map" },
    h("thead", {}, h("tr", {}, h("th", {}, "Door"), hours.map((i) => h("th", {}, i % 3 === 0 ? String(i).padStart(2, "0") : "")))),
    h("tbody", {}, [...grid.entries()].map(([door, counts]) => h("tr", { dataset: { door } },
      h("th", {}, names.get(door) || door),
      counts.map((n, i) => h("td", {
        style: n ? `background: rgba(37, 99, 235, ${0.15 + 0.85 * (n / max)})` : null,
        title: `${names.get(door) || door} ${String(i).padStart(2, "0")}:00 ${n} release(s)`,
      }, n ? String(n) : "")))))));
}

async function dashboardPage(root) {
  const [doors, hw, alarms, sync, events] = await Promise.all([
    api("GET", "/doors"), api("GET", "/hardware"), api("GET", "/alarms?open=true"),
    api("GET", "/sync"), todaysEvents(),
  ]);
  const access = events.filter((e) => e.type === "access");
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
      h("section", { class: "panel" }, h("h2", {}, `Today's grants and denials (hours, ${siteZone()})`), hourChart(access)),
      h("section", { class: "panel" }, h("h2", {}, "Door access by credential type (granted / denied)"), kindChart(events)),
      h("section", { class: "panel span-all" }, h("h2", {}, `Door releases per door and hour (${siteZone()})`), releaseMap(events, doors.items)),
      h("section", { class: "panel" }, h("h2", {}, "Doors"),
        table([{ label: "Door", key: "name" }, { label: "State", render: (d) => badge(d.state) },
          { label: "Board", render: (d) => badge(d.board_online ? "online" : "offline") }], doors.items)),
      h("section", { class: "panel" }, h("h2", {}, "Open alarms"),
        table([{ label: "Alarm", key: "kind" }, { label: "Where", key: "source" },
          { label: timeLabel("Since"), render: (a) => when(a.at) }], alarms.items)),
      h("section", { class: "panel" }, h("h2", {}, "Boards"),
        table([{ label: "Board", key: "id" }, { label: "Type", key: "type" },
          { label: "Status", render: (b) => badge(b.online ? "online" : "offline") }], hw.boards)),
      parkingPanel()));
}

export { dashboardPage };
