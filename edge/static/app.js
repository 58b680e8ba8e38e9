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
let visits = 0;
async function route() {
  const mine = ++visits;
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
  if (mine !== visits) return; // another visit started meanwhile
  if (state.me) live.start(); else live.stop();
  const render = PAGES[page] || (state.me ? PAGES.dashboard : PAGES.login);
  chrome(render === PAGES.login || render === PAGES.setup);
  document.getElementById("nav").classList.add("closed");
  // Each visit renders into its own element: a slow page that finishes after the user has
  // moved on writes into a detached element, never over the page now shown.
  const root = h("div", { class: "page", dataset: { page: [page, id].filter(Boolean).join("/") } },
    h("p", { class: "muted" }, "Loading…"));
  put(view(), root);
  try {
    const cleanup = await render(root, { onLogin: afterLogin, id: id || null });
    if (typeof cleanup === "function") {
      if (mine === visits) leaving.push(cleanup); else cleanup();
    }
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
