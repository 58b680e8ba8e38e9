// The "Import" page: the reference's templates (residents, RF cards/PINs, staff cards).
// Download a template or an export, pick a filled-in file, check it (dry run) or import
// it; a progress bar follows the server's job, and a refused file shows every problem
// as a table of row, column and message. Nothing is changed unless the whole file is good.
import { ApiError, can, field, h, put, state, table, toast } from "./lib.js";

const KINDS = {
  residents: "Residents",
  cards: "RF cards / PINs",
  staff: "Staff cards",
};
const EXPORTS = { residents: "Residents", apartments: "Apartments", cards: "RF cards / PINs", staff: "Staff cards" };
const ISSUE_COLUMNS = [
  { key: "entity", label: "Row" },
  { key: "field", label: "Column" },
  { key: "message", label: "Problem" },
];

function download(path) {
  const a = h("a", { href: `/api/v1${path}`, download: "" });
  document.body.append(a);
  a.click();
  a.remove();
}

function jobId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function upload(kind, file, dryRun, job) {
  const q = new URLSearchParams({ job });
  if (dryRun) q.set("dry_run", "true");
  const headers = { Accept: "application/json", "Content-Type": file.type || "application/octet-stream" };
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(`/api/v1/import/${kind}?${q}`, {
    method: "POST", headers, credentials: "same-origin", body: file,
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const STAGES = { receiving: "Uploading", reading: "Reading the file", checking: "Checking rows",
  validating: "Checking the policy", applying: "Applying", done: "Done" };

export async function importPage(root) {
  if (!can("admin")) {
    put(root, h("h1", {}, "Import"), h("p", { class: "muted" }, "Imports and exports need the admin role."));
    return;
  }
  const kind = h("select", { name: "kind", id: "import-kind" },
    Object.entries(KINDS).map(([k, label]) => h("option", { value: k }, label)));
  const format = h("select", { name: "format", id: "import-format" },
    h("option", { value: "xlsx" }, "xlsx"), h("option", { value: "csv" }, "csv (UTF-8)"));
  const file = h("input", { type: "file", name: "file", id: "import-file", accept: ".xlsx,.csv" });
  const dry = h("input", { type: "checkbox", name: "dry_run", id: "import-dry", checked: true, style: "width: auto; margin: 0" });
  const bar = h("progress", { id: "import-progress", max: 100, value: 0, hidden: true, style: "width: 100%; height: 1.2rem" });
  const stage = h("p", { class: "muted", id: "import-stage" });
  const outcome = h("div", { id: "import-outcome" });
  const go = h("button", { class: "primary", type: "submit", id: "import-go" }, "Check file");
  dry.addEventListener("change", () => { go.textContent = dry.checked ? "Check file" : "Import"; });

  const template = h("button", { type: "button", id: "import-template",
    onclick: () => download(`/templates/${kind.value}?format=${format.value}`) }, "Download template");
  const exports = h("div", { class: "actions" }, Object.entries(EXPORTS).map(([k, label]) =>
    h("button", { type: "button", id: `export-${k}`,
      onclick: () => download(`/export/${k}?format=${format.value}`) }, `Export ${label}`)));

  const form = h("form", { class: "fields", id: "import-form" },
    field("Template", kind), field("Format", format), field("File", file),
    h("label", { htmlFor: dry.id, style: "display: flex; gap: .4rem; align-items: center; align-self: center; white-space: nowrap" },
      dry, "Dry run (check only)"),
    go, template);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const picked = file.files && file.files[0];
    if (!picked) { toast("Pick a .xlsx or .csv file first.", true); return; }
    const job = jobId();
    go.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    put(outcome);
    let polling = true;
    const poll = async () => {
      while (polling) {
        try {
          const res = await fetch(`/api/v1/import/jobs/${job}`, { credentials: "same-origin" });
          if (res.ok && polling) {
            const p = await res.json();
            if (p.total) bar.value = Math.round((100 * p.done) / p.total);
            stage.textContent = `${STAGES[p.stage] || p.stage}${p.total ? ` — ${p.done} of ${p.total} rows` : ""}`;
          }
        } catch { /* the answer of the upload itself says what happened */ }
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    const polled = poll();
    try {
      const out = await upload(kind.value, picked, dry.checked, job);
      bar.value = 100;
      stage.textContent = out.dry_run ? "Checked: the file is good. Nothing was changed." : "Imported.";
      put(outcome, h("p", { id: "import-summary" }, out.summary),
        out.dry_run ? h("p", { class: "muted" }, "Untick “Dry run” and import it to apply.") : null);
      toast(out.dry_run ? "The file is good" : `Imported: policy version ${out.version ?? "unchanged"}`);
    } catch (err) {
      stage.textContent = "Refused: nothing was changed.";
      bar.hidden = true;
      const issues = err.issues || [];
      put(outcome,
        h("p", { class: "error", role: "alert", id: "import-error" }, err.message),
        issues.length ? h("div", { id: "import-issues" }, table(ISSUE_COLUMNS, issues)) : null);
    } finally {
      polling = false;
      go.disabled = false;
      await polled;
    }
  });

  put(root,
    h("h1", {}, "Import"),
    h("p", { class: "muted" },
      "Download a template, fill it in, then check and import it. To edit in batch: export, edit, re-import — " +
      "a blank cell keeps the value, the UID column identifies the person, and **** stands for a card or PIN " +
      "that is kept (the site stores them only as hashes)."),
    h("section", { class: "panel" }, form, bar, stage, outcome),
    h("section", { class: "panel" }, h("h2", {}, "Export"), exports));
}
