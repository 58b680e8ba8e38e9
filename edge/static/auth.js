// Onboarding and login: shown without the navigation (app.js sets body.bare).
import { api, errorText, field, h, put } from "./lib.js";

function authBox(title, intro, fields, submitText, onSubmit) {
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { class: "primary", type: "submit" }, submitText);
  const form = h("form", { class: "stack" },
    fields.map(([name, label, type, extra]) => field(label,
      h("input", { name, type, required: true, autocomplete: extra || "off" }))),
    error, button);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await onSubmit(Object.fromEntries(new FormData(form)), error);
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "auth-box panel" }, h("h1", {}, title), h("p", { class: "muted" }, intro), form);
}

async function setupPage(root, { onLogin }) {
  put(root, authBox(
    "Set up this gateway",
    "Enter the one-time setup code printed by `doorkeep init` or `doorkeep run`, and create the administrator account.",
    [["code", "Setup code", "text"], ["username", "Admin user name", "text", "username"],
      ["password", "Password (12 characters or more)", "password", "new-password"],
      ["confirm", "Repeat the password", "password", "new-password"]],
    "Create admin",
    async (f, error) => {
      if (f.password !== f.confirm) { error.textContent = "The passwords differ."; return; }
      const me = await api("POST", "/auth/setup", { code: f.code.trim(), username: f.username.trim(), password: f.password });
      await onLogin(me);
    }));
}

async function loginPage(root, { onLogin }) {
  put(root, authBox("Log in", "The installer and operator console of this site.",
    [["username", "User name", "text", "username"], ["password", "Password", "password", "current-password"]],
    "Log in",
    async (f) => onLogin(await api("POST", "/auth/login", { username: f.username.trim(), password: f.password }))));
}

export { setupPage, loginPage };
