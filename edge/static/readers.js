// The Hardware page's reader panel: every reader's link (online, Secure Channel, last seen,
// why not) from GET /readers, and the installer's "Provision" for OSDP readers.
import { act, api, badge, can, h, table, when } from "./lib.js";

function link(r) {
  if (r.online === null) return badge("no link of its own", "muted");
  return badge(r.online ? "online" : "offline", r.online ? "ok" : "bad");
}

function secure(r) {
  if (r.type !== "osdp") return "—";
  return badge(r.secure ? "Secure Channel" : "not secure", r.secure ? "ok" : "bad");
}

export async function readersPanel() {
  const rows = (await api("GET", "/readers")).items;
  const section = h("section", { class: "panel", id: "readers" });
  const provision = (r) => (r.type === "osdp" && can("installer") ? h("button", {
    onclick: (ev) => act(ev.target, async () => {
      const out = await api("POST", `/readers/${encodeURIComponent(r.id)}/provision`, { seconds: 60 });
      setTimeout(() => refresh(), 65000);
      return out;
    }, `${r.id}: provisioning window open for 60 s; put the reader in install mode`),
  }, "Provision") : null);
  const render = (items) => section.replaceChildren(h("h2", {}, "Readers"),
    h("p", { class: "muted small" }, "OSDP readers talk only with Secure Channel and their own key; "
      + "Provision lets one reader in install mode receive its key for 60 seconds."),
    table([{ label: "Reader", key: "id" }, { label: "Type", key: "type" }, { label: "Door", key: "door" },
      { label: "Link", render: link }, { label: "Secure", render: secure },
      { label: "Last seen", render: (r) => when(r.last_seen) },
      { label: "Why", render: (r) => r.detail.provisioning === "open" ? "provisioning window open" : (r.detail.reason || r.detail.provisioning || "—") },
      { label: "", render: provision }], items));
  const refresh = async () => render((await api("GET", "/readers")).items);
  render(rows);
  return section;
}
