// Every page of the UI: a table from the URL hash to a render function (one module per area).
import { setupPage, loginPage } from "./auth.js";
import { dashboardPage } from "./dashboard.js";
import { doorsPage } from "./doors.js";
import { entityPage, ENTITY_PAGES } from "./entities.js";
import { hardwarePage } from "./hardware.js";
import { importPage } from "./imports.js";
import { locksPage } from "./locks.js";
import { logsPage } from "./logs.js";
import { personPage } from "./person.js";
import { settingsPage } from "./settings.js";

export const PAGES = {
  setup: setupPage,
  login: loginPage,
  dashboard: dashboardPage,
  doors: doorsPage,
  hardware: hardwarePage,
  logs: logsPage,
  settings: settingsPage,
  import: importPage,
  locks: locksPage,
  ...Object.fromEntries(Object.keys(ENTITY_PAGES).map((k) => [k, (root, ctx) => entityPage(root, k, ctx)])),
  // #/people/ID: one person's page
  people: (root, ctx) => (ctx.id ? personPage(root, ctx.id) : entityPage(root, "people", ctx)),
};
