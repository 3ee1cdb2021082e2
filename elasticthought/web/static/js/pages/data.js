// Datafiles (upload with progress, or by URL) and datasets (split, labels and counts).
import { FINAL_STATES, FINISHED, api, listAll, upload } from "../api.js";
import { bytes, field, h, fill, select, stateBadge, table, when } from "../dom.js";
import { go, link } from "../nav.js";

const POLL_MS = 1500;

/** A datafile's source as the user gave it: the uploaded file's name or the URL. */
export function datafileSource(doc) {
  return doc.uploaded ? doc.filename || "(upload)" : doc.url || "";
}

function pending(items) {
  return items.some((d) => !FINAL_STATES.includes(d["processing-state"]));
}

function kindControls() {
  const kind = select({ name: "layers_type" }, [["IMAGE_DATA", "Image folders (IMAGE_DATA)"], ["DATA", "Caffe database (DATA)"]]);
  const backend = select({ name: "backend" }, [["LEVELDB", "LevelDB"], ["LMDB", "LMDB"]]);
  const backendField = field("Database backend", backend);
  backendField.hidden = true;
  kind.addEventListener("change", () => {
    backendField.hidden = kind.value !== "DATA";
  });
  return { kind, backend, fields: [field("Kind", kind), backendField] };
}

export async function datafiles(main, _params, page) {
  const list = h("div", { "aria-live": "polite" });

  // Upload with a progress bar.
  const fileInput = h("input", { type: "file", name: "file", accept: ".tar.gz,.tgz,application/gzip", required: true });
  const up = kindControls();
  const progress = h("progress", { max: 1, value: 0, "aria-label": "Upload progress" });
  const progressText = h("span", { class: "muted" });
  const upError = h("p", { class: "error", role: "alert" });
  const upButton = h("button", { type: "submit" }, "Upload");
  const uploadForm = h("form", { class: "panel", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload a .tar.gz"),
    field("Archive (a folder per label, or a LevelDB/LMDB)", fileInput), ...up.fields,
    h("div", { class: "row" }, upButton, progress, progressText), upError);
  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    upError.textContent = "";
    if (!fileInput.files.length) return;
    const form = new FormData();
    form.append("file", fileInput.files[0], fileInput.files[0].name);
    form.append("layers_type", up.kind.value);
    if (up.kind.value === "DATA") form.append("backend", up.backend.value);
    upButton.disabled = true;
    try {
      await upload("/datafiles", form, (share) => {
        progress.value = share;
        progressText.textContent = `${Math.round(share * 100)} %`;
      });
      progressText.textContent = "uploaded";
      uploadForm.reset();
      refresh();
    } catch (e) {
      upError.textContent = e.message;
    } finally {
      upButton.disabled = false;
    }
  });

  // By URL.
  const url = h("input", { type: "url", name: "url", required: true, placeholder: "https://example.org/data.tar.gz" });
  const byUrl = kindControls();
  const urlError = h("p", { class: "error", role: "alert" });
  const urlForm = h("form", { class: "panel", "aria-labelledby": "url-title" },
    h("h2", { id: "url-title" }, "Or fetch one by URL"),
    field("URL of the .tar.gz", url), ...byUrl.fields,
    h("div", null, h("button", { type: "submit" }, "Fetch")), urlError);
  urlForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    urlError.textContent = "";
    const body = { url: url.value.trim(), layers_type: byUrl.kind.value };
    if (byUrl.kind.value === "DATA") body.layers_data_param = { backend: byUrl.backend.value };
    try {
      await api("POST", "/datafiles", { json: body });
      urlForm.reset();
      refresh();
    } catch (e) {
      urlError.textContent = e.message;
    }
  });

  main.append(h("h1", null, "Datafiles"), h("h2", null, "Your datafiles"), list, h("div", { class: "grid2" }, uploadForm, urlForm));

  async function draw() {
    const items = await listAll("/datafiles");
    if (!page.active) return false;
    fill(list, table("Datafiles, newest first", ["Source", "Kind", "State", "#Images", "#Labels", "#Size", "Created", "Problem", ""],
      items.map((d) => [
        h("span", { class: "mono" }, datafileSource(d)),
        d.layers_type === "DATA" ? `DATA (${(d.layers_data_param || {}).backend || ""})` : d.layers_type,
        stateBadge(d["processing-state"]),
        d["image-count"] ?? d["record-count"] ?? "",
        (d.labels || []).length || "",
        bytes(d.size),
        when(d["created-at"]),
        h("span", { class: "error" }, d["processing-state"] === "failed" ? d["processing-log"] : ""),
        h("button", { type: "button", class: "secondary", onclick: () => remove(d), "aria-label": `Delete datafile ${datafileSource(d)}` }, "Delete"),
      ]), "No datafiles yet: upload one below."));
    return pending(items);
  }
  async function remove(doc) {
    try {
      await api("DELETE", `/datafiles/${encodeURIComponent(doc.id)}`);
      refresh();
    } catch (e) {
      urlError.textContent = e.message;
    }
  }
  let polling = false;
  function refresh() {
    if (polling) return draw();
    polling = true;
    page.every(POLL_MS, async () => {
      const more = await draw();
      if (!more) polling = false;
      return more;
    });
  }
  refresh();
}

export async function datasets(main, _params, page) {
  const list = h("div");
  const name = h("input", { type: "text", name: "name", maxlength: 200 });
  const datafile = h("select", { name: "datafile", required: true });
  const share = h("input", { type: "number", name: "training", min: 1, max: 99, step: 1, value: 70, required: true });
  const mean = h("input", { type: "checkbox", name: "compute-mean" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-labelledby": "new-dataset" },
    h("h2", { id: "new-dataset" }, "New dataset"),
    field("Name (optional)", name),
    field("Datafile", datafile),
    field("Training split (%)", share, "Each label's images are split: this share trains, the rest tests."),
    h("div", null, mean, " ", h("label", { class: "inline", for: (mean.id = "compute-mean") }, "Compute the training mean image")),
    h("div", null, h("button", { type: "submit" }, "Create dataset")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const p = Number(share.value) / 100;
    try {
      const made = await api("POST", "/datasets", {
        json: {
          name: name.value,
          training: { "datafile-id": datafile.value, "split-percentage": p },
          testing: { "datafile-id": datafile.value, "split-percentage": Math.round((1 - p) * 100) / 100 },
          "compute-mean": mean.checked,
        },
      });
      go(link("datasets", made.id).slice(2));
    } catch (e) {
      error.textContent = e.message;
    }
  });
  main.append(h("h1", null, "Datasets"), list, form);

  const files = (await listAll("/datafiles")).filter((d) => !["failed", "canceled"].includes(d["processing-state"]));
  fill(datafile, files.map((d) => h("option", { value: d.id }, `${datafileSource(d)} (${d["processing-state"]})`)));
  if (!files.length) error.textContent = "Upload a datafile first.";

  page.every(POLL_MS, async () => {
    const items = await listAll("/datasets");
    if (!page.active) return false;
    fill(list, table("Datasets, newest first", ["Name", "State", "#Labels", "#Training", "#Testing", "Created", "Problem"],
      items.map((d) => [
        h("a", { href: link("datasets", d.id) }, d.name || "(unnamed)"),
        stateBadge(d["processing-state"]),
        (d.labels || []).length || "",
        ((d.artifacts || {}).training || {}).count ?? "",
        ((d.artifacts || {}).testing || {}).count ?? "",
        when(d["created-at"]),
        h("span", { class: "error" }, d["processing-state"] === "failed" ? d["processing-log"] : ""),
      ]), "No datasets yet."));
    return pending(items);
  });
}

export async function dataset(main, [id], page) {
  await api("GET", `/datasets/${encodeURIComponent(id)}`, { signal: page.signal }); // 404 -> "Not found"
  const heading = h("h1");
  const facts = h("div");
  const labels = h("div");
  main.append(heading, facts, h("h2", null, "Labels and counts per split"), labels);
  page.every(POLL_MS, async () => {
    const d = await api("GET", `/datasets/${encodeURIComponent(id)}`, { signal: page.signal });
    heading.textContent = `Dataset ${d.name || "(unnamed)"}`;
    const train = (d.artifacts || {}).training || {};
    const test = (d.artifacts || {}).testing || {};
    fill(facts, h("dl", { class: "facts" },
      h("dt", null, "State"), h("dd", null, stateBadge(d["processing-state"])),
      h("dt", null, "Kind"), h("dd", null, d.layers_type || ""),
      h("dt", null, "Split"), h("dd", null, `${Math.round(d.training["split-percentage"] * 100)} % training / ${Math.round(d.testing["split-percentage"] * 100)} % testing`),
      h("dt", null, "Id"), h("dd", { class: "mono" }, d.id),
      d["processing-state"] === "failed" ? [h("dt", null, "Problem"), h("dd", { class: "error" }, d["processing-log"])] : null));
    const rows = (d.labels || []).map((label) => [
      String(label),
      (train["label-counts"] || {})[String(label)] ?? 0,
      (test["label-counts"] || {})[String(label)] ?? 0,
    ]);
    if (rows.length) rows.push([h("strong", null, "All"), train.count ?? 0, test.count ?? 0]);
    fill(labels, table(null, ["Label", "#Training", "#Testing"], rows,
      d["processing-state"] === FINISHED ? "No labels." : "The labels appear once the dataset is built.", "compact"));
    return !FINAL_STATES.includes(d["processing-state"]);
  });
}
