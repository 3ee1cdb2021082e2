// Classifiers (made from a finished training job) and the classify page: drop or pick images,
// see each one's top-5 labels with probability bars.
import { FINISHED, api, listAll } from "../api.js";
import { field, fill, h, table, when } from "../dom.js";
import { go, link } from "../nav.js";
import { jobLabel } from "./jobs.js";

export async function classifiers(main, _params, page) {
  const list = h("div");
  const jobSelect = h("select", { name: "training-job-id", required: true });
  const name = h("input", { type: "text", name: "name", maxlength: 200 });
  const spec = h("textarea", { name: "specification", rows: 12, spellcheck: "false", required: true });
  const specFile = h("input", { type: "file", accept: ".prototxt,.txt,text/plain", "aria-label": "Deploy prototxt: load from a file" });
  specFile.addEventListener("change", async () => {
    if (specFile.files.length) spec.value = await specFile.files[0].text();
  });
  const scale = h("input", { type: "number", name: "scale", value: 255, step: "any" });
  const width = h("input", { type: "number", name: "image-width", min: 1, step: 1 });
  const height = h("input", { type: "number", name: "image-height", min: 1, step: 1 });
  const color = h("input", { type: "checkbox", name: "color", id: "clf-color" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-labelledby": "new-classifier" },
    h("h2", { id: "new-classifier" }, "New classifier from a finished training job"),
    field("Training job", jobSelect), field("Name (optional)", name),
    field("Deploy prototxt", spec), h("div", { class: "row" }, h("span", { class: "muted" }, "or load a file:"), specFile),
    h("div", { class: "grid2" },
      field("Scale (raw pixel scale; 255 keeps bytes)", scale),
      field("Image width (px, empty: the net's)", width),
      field("Image height (px, empty: the net's)", height)),
    h("div", null, color, " ", h("label", { class: "inline", for: "clf-color" }, "Color images (otherwise gray)")),
    h("div", null, h("button", { type: "submit" }, "Create classifier")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { "training-job-id": jobSelect.value, specification: spec.value, scale: Number(scale.value || 255), color: color.checked };
    if (name.value) body.name = name.value;
    if (width.value) body["image-width"] = Number(width.value);
    if (height.value) body["image-height"] = Number(height.value);
    try {
      const made = await api("POST", "/classifiers", { json: body });
      go(link("classifiers", made.id).slice(2));
    } catch (e) {
      error.textContent = e.message;
    }
  });
  main.append(h("h1", null, "Classifiers"), list, form);

  const finished = (await listAll("/training-jobs")).filter((j) => j["processing-state"] === FINISHED);
  fill(jobSelect, finished.map((j) => h("option", { value: j.id }, `${jobLabel(j)} (${j.engine}, ${when(j["finished-at"])})`)));
  if (page.query.get("job")) jobSelect.value = page.query.get("job");
  if (!finished.length) error.textContent = "A classifier needs a finished training job: train one first.";

  const items = await listAll("/classifiers");
  fill(list, table("Classifiers, newest first", ["Name", "Labels", "Input", "Engine", "Created"], items.map((c) => [
    h("a", { href: link("classifiers", c.id) }, c.name || `classifier …${c.id.slice(-8)}`),
    `${(c.labels || []).length || "numbers"}`,
    `${c["image-width"] || "?"} × ${c["image-height"] || "?"} ${c.color ? "color" : "gray"}`,
    c.engine, when(c["created-at"]),
  ]), "No classifiers yet."));
}

function resultCard(file, url, result) {
  const card = h("figure", { class: "result" });
  const img = h("img", { src: url, alt: `Image ${file.name}` });
  if (!result || result.error) {
    return append(card, img, h("figcaption", null, file.name, h("p", { class: "error" }, result ? result.error : "no result")));
  }
  const top = result["top-5"] || [];
  return append(card, img, h("figcaption", null,
    h("div", { class: "mono" }, file.name),
    h("div", null, "Top label: ", h("span", { class: "top1" }, String(result.label))),
    h("ol", { class: "top5", "aria-label": `Top ${top.length} labels of ${file.name}` }, top.map((t) =>
      h("li", null, h("span", { class: "label" }, String(t.label)),
        h("meter", { min: 0, max: 1, value: t.probability, "aria-label": `${t.label}: ${(t.probability * 100).toFixed(1)} %` }),
        h("span", { class: "num" }, `${(t.probability * 100).toFixed(1)} %`))))));
}

function append(el, ...children) {
  el.append(...children);
  return el;
}

export async function classifyPage(main, [id], page) {
  const path = `/classifiers/${encodeURIComponent(id)}`;
  const clf = await api("GET", path, { signal: page.signal });
  const input = h("input", { type: "file", accept: "image/*", multiple: true, id: "classify-files" });
  const zone = h("div", { class: "dropzone", id: "dropzone", tabindex: 0, role: "button", "aria-describedby": "drop-help" },
    h("strong", null, "Drop images here"), h("div", { id: "drop-help", class: "muted" }, "or press Enter to choose files (PNG, JPEG, ...)"));
  const status = h("p", { role: "status", "aria-live": "polite" });
  const results = h("div", { class: "results", id: "results" });
  main.append(h("h1", null, `Classify with ${clf.name || `classifier …${clf.id.slice(-8)}`}`),
    h("dl", { class: "facts" },
      h("dt", null, "Labels"), h("dd", null, (clf.labels || []).join(" ") || "class numbers"),
      h("dt", null, "Input"), h("dd", null, `${clf["image-width"]} × ${clf["image-height"]} ${clf.color ? "color" : "gray"}, scale ${clf.scale}`),
      h("dt", null, "Training job"), h("dd", null, clf["training-job-id"] ? h("a", { href: link("jobs", clf["training-job-id"]) }, clf["training-job-id"]) : "(uploaded model)")),
    zone, field("Or pick images", input), status, results);
  const urls = [];
  page.onLeave(() => urls.forEach((u) => URL.revokeObjectURL(u)));

  async function classify(files) {
    if (!files.length) return;
    status.textContent = `Classifying ${files.length} image(s)…`;
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    try {
      const done = await api("POST", `${path}/classify?wait=true`, { form, signal: page.signal });
      if (!page.active) return;
      if (!done.results) {
        status.textContent = `Still classifying (job ${done.id}, ${done["processing-state"]}): try again shortly.`;
        return;
      }
      const names = (done.images || []).map((img) => img.name);
      const cards = files.map((file, i) => {
        const url = URL.createObjectURL(file);
        urls.push(url);
        return resultCard(file, url, done.results[names[i] ?? file.name]);
      });
      results.prepend(...cards);
      status.textContent = `Classified ${files.length} image(s).`;
    } catch (e) {
      status.textContent = "";
      fill(status, h("span", { class: "error" }, e.message));
    }
  }
  input.addEventListener("change", () => {
    classify([...input.files]);
    input.value = "";
  });
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    classify([...event.dataTransfer.files].filter((f) => f.type.startsWith("image/") || !f.type));
  });
}
