// The shell: decides between onboarding, login and the app, and routes #/page hashes.
import { api, h, live, put, state, errorText } from "./lib.js";
import { PAGES } from "./pages.js";

const view = () => document.getElementById("view");

async function refreshMe() {
  try {
    state.me = await api("GET", "/auth/me");
    state.csrf = state.me.csrf_token;
  } catch {
    state.me = null;
    state.csrf = null;
  }
}

function chrome(bare) {
  const loggedIn = !!state.me;
  // onboarding and login stand alone: no navigation, no live dot, no menu
  document.body.classList.toggle("bare", bare);
  document.getElementById("nav").hidden = !loggedIn;
  document.getElementById("logout").hidden = !loggedIn;
  document.getElementById("who").textContent = loggedIn ? `${state.me.username} · ${state.me.role}` : "";
  document.getElementById("site-name").textContent = state.health ? state.health.site : "";
  const page = (location.hash.split("/")[1] || "dashboard").split("?")[0];
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${page}`);
  }
}

let leaving = [];
async function route() {
  for (const fn of leaving) fn();
  leaving = [];
  const [page = "", id = ""] = location.hash.split("?")[0].split("/").slice(1).map((p) => decodeURIComponent(p || ""));
  if (!state.health) state.health = await api("GET", "/health").catch(() => null);
  const setup = await api("GET", "/auth/setup").catch(() => ({ setup_required: false }));
  if (setup.setup_required) {
    if (page !== "setup") { location.hash = "#/setup"; return; }
  } else if (!state.me) {
    await refreshMe();
    if (!state.me && page !== "login") { location.hash = "#/login"; return; }
  }
  if (state.me) live.start(); else live.stop();
  const render = PAGES[page] || (state.me ? PAGES.dashboard : PAGES.login);
  chrome(render === PAGES.login || render === PAGES.setup);
  document.getElementById("nav").classList.add("closed");
  const root = view();
  put(root, h("p", { class: "muted" }, "Loading…"));
  try {
    const cleanup = await render(root, { onLogin: afterLogin, id: id || null });
    if (typeof cleanup === "function") leaving.push(cleanup);
  } catch (err) {
    put(root, h("div", { class: "banner" }, `Could not load this page: ${errorText(err)}`));
  }
}

async function afterLogin(me) {
  state.me = me;
  state.csrf = me.csrf_token;
  location.hash = "#/dashboard";
  await route();
}

document.getElementById("logout").addEventListener("click", async () => {
  await api("POST", "/auth/logout").catch(() => null);
  state.me = null;
  state.csrf = null;
  live.stop();
  location.hash = "#/login";
});
document.getElementById("menu-toggle").addEventListener("click", () => {
  const nav = document.getElementById("nav");
  nav.classList.toggle("closed");
});
window.addEventListener("hashchange", route);
document.getElementById("nav").classList.add("closed");
route();
