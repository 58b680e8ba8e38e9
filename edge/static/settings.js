// Settings: the policy settings, users and API tokens (create and revoke).
import { act, api, can, confirmDialog, field, h, put, siteZone, state, table, timeLabel, when } from "./lib.js";

async function settingsPage(root) {
  const [policy, doors, sync] = await Promise.all([api("GET", "/policy"), api("GET", "/doors"), api("GET", "/sync")]);
  state.sync = sync;
  const st = policy.settings || {};
  const lockout = st.lockout || {};
  const emergencyDoors = new Set((st.emergency || {}).doors || []);
  const readOnly = sync.enrolled || !can("admin");
  const form = h("form", { class: "fields", id: "settings-form" },
    field("PIN mode", h("select", { name: "pin_mode", disabled: readOnly },
      [["pin", "PIN"], ["apt_pin", "Apartment number + PIN"]].map(([v, t]) => h("option", { value: v, selected: st.pin_mode === v }, t)))),
    field("Lockout after failures", h("input", { name: "failures", type: "number", min: 1, value: lockout.failures ?? 5, disabled: readOnly })),
    field("…within seconds", h("input", { name: "window_s", type: "number", min: 1, value: lockout.window_s ?? 60, disabled: readOnly })),
    field("Lock for seconds", h("input", { name: "lock_s", type: "number", min: 1, value: lockout.lock_s ?? 300, disabled: readOnly })),
    field("Temp key max days", h("input", { name: "temp_key_max_days", type: "number", min: 1, value: st.temp_key_max_days ?? 30, disabled: readOnly })));
  const doorChecks = doors.items.map((d) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "emergency", value: d.id, checked: emergencyDoors.has(d.id), disabled: readOnly }), d.name || d.id));
  const save = h("button", {
    class: "primary", disabled: readOnly,
    onclick: (ev) => act(ev.target, async () => {
      const f = new FormData(form);
      const doc = await api("GET", "/policy");
      doc.settings = {
        ...doc.settings,
        pin_mode: f.get("pin_mode") || st.pin_mode,
        temp_key_max_days: Number(f.get("temp_key_max_days")),
        lockout: { failures: Number(f.get("failures")), window_s: Number(f.get("window_s")), lock_s: Number(f.get("lock_s")) },
        emergency: { ...(doc.settings.emergency || {}), doors: doorChecks.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value) },
      };
      return api("PUT", "/policy", doc);
    }, (out) => `Policy saved (version ${out.version})`),
  }, "Save settings");
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  put(root, h("h1", {}, "Settings"),
    sync.enrolled ? h("div", { class: "banner" }, "This site is enrolled with a cloud: settings are managed there and shown read-only.") : null,
    h("section", { class: "panel" }, h("h2", {}, "Site"),
      table([{ label: "Setting", key: "k" }, { label: "Value", key: "v" }], [
        { k: "Site", v: state.health && state.health.site }, { k: "Site time zone", v: state.health && state.health.timezone },
        { k: "This browser's time zone", v: tz }, { k: "Times in this UI", v: `the site's zone (${siteZone()})` }, { k: "Version", v: state.health && state.health.version },
        { k: "Policy version", v: sync.version }, { k: "Policy owner", v: sync.enrolled ? "cloud" : "this site" }])),
    h("section", { class: "panel" }, h("h2", {}, "Access policy settings"), form,
      h("h3", {}, "Emergency door group"), h("div", { class: "row" }, doorChecks), h("div", { class: "row end" }, save)),
    can("admin") ? await accountsPanel() : null);
}

// Users and API tokens: create, and revoke (delete a user: their sessions end; revoke a
// token: the next request with it is refused), each after a confirmation.
async function accountsPanel() {
  const panel = h("section", { class: "panel", id: "accounts" });
  const shown = h("div");
  const refresh = async () => {
    const [users, tokens] = await Promise.all([api("GET", "/users"), api("GET", "/tokens")]);
    const revoke = (what, path, title, body, done) => h("button", {
      class: "danger small-button", "aria-label": `${what}`,
      onclick: async (ev) => {
        if (!(await confirmDialog(title, body, what.split(" ")[0]))) return;
        if (await act(ev.target, () => api("DELETE", path).then(() => true), done)) await refresh();
      },
    }, what.split(" ")[0]);
    const userForm = h("form", { class: "fields" },
      field("User name", h("input", { name: "username", required: true })),
      field("Password", h("input", { name: "password", type: "password", minLength: 12, required: true, autocomplete: "new-password" })),
      field("Role", h("select", { name: "role" }, ["viewer", "installer", "admin"].map((r) => h("option", { value: r }, r)))),
      h("button", { class: "primary", type: "submit" }, "Add user"));
    userForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (await act(ev.submitter, () => api("POST", "/users", Object.fromEntries(new FormData(userForm))), "User added")) await refresh();
    });
    const tokenForm = h("form", { class: "fields" },
      field("Token name", h("input", { name: "name", required: true })),
      field("Role", h("select", { name: "role" }, ["viewer", "installer", "admin"].map((r) => h("option", { value: r }, r)))),
      h("button", { class: "primary", type: "submit" }, "Create token"));
    tokenForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = await act(ev.submitter, () => api("POST", "/tokens", Object.fromEntries(new FormData(tokenForm))));
      if (out) {
        await refresh();
        put(shown, h("p", {}, "Copy this token now; it is never shown again:"), h("div", { class: "secret" }, out.token));
      }
    });
    const me = state.me && state.me.username;
    put(panel, h("h2", {}, "Users and API tokens"),
      table([{ label: "User", key: "username" }, { label: "Role", key: "role" },
        { label: "", render: (u) => (u.username === me ? h("span", { class: "muted small" }, "you") : revoke(`Delete user ${u.username}`, `/users/${encodeURIComponent(u.username)}`,
          `Delete the user ${u.username}?`, "They are logged out at once and can no longer log in.", `User ${u.username} deleted`)) }], users.items),
      userForm,
      h("h3", {}, "API tokens"),
      table([{ label: "Token", key: "name" }, { label: "Role", key: "role" }, { label: timeLabel("Created"), render: (t) => when(t.created * 1000) },
        { label: "", render: (t) => revoke(`Revoke token ${t.name}`, `/tokens/${encodeURIComponent(t.name)}`,
          `Revoke the token ${t.name}?`, "Any program using it is refused from its next request on.", `Token ${t.name} revoked`) }], tokens.items),
      tokenForm, shown);
  };
  await refresh();
  return panel;
}

export { settingsPage };
