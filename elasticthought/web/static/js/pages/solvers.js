// Solvers: a solver + net prototxt pair on a dataset, uploaded from files or pasted; a parse
// error is shown with its line and column, and the caret is put there.
import { api, listAll } from "../api.js";
import { field, fill, h, table, when } from "../dom.js";
import { link } from "../nav.js";

/** "'specification-net' line 3, column 7: reason" -> {key, line, column}. */
export function errorPosition(message) {
  const match = /^'([a-z-]+)' line (\d+)(?:, column (\d+))?/.exec(message || "");
  if (!match) return null;
  return { key: match[1], line: Number(match[2]), column: Number(match[3] || 1) };
}

/** Put the caret of a textarea at line:column (1-based) and scroll there. */
function caretAt(textarea, line, column) {
  const lines = textarea.value.split("\n");
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i].length + 1;
  offset += Math.max(0, Math.min(column - 1, (lines[line - 1] || "").length));
  textarea.focus();
  textarea.setSelectionRange(offset, Math.min(offset + 1, textarea.value.length));
  const lineHeight = textarea.scrollHeight / Math.max(lines.length, 1);
  textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

function textWithFile(labelText, name) {
  const text = h("textarea", { name, rows: 14, spellcheck: "false", required: true });
  const file = h("input", { type: "file", accept: ".prototxt,.txt,text/plain", "aria-label": `${labelText}: load from a file` });
  file.addEventListener("change", async () => {
    if (file.files.length) text.value = await file.files[0].text();
  });
  return { text, file, box: h("div", null, field(labelText, text), h("div", { class: "row" }, h("span", { class: "muted" }, "or load a file:"), file)) };
}

export async function solvers(main, _params, page) {
  const list = h("div");
  const dataset = h("select", { name: "dataset", required: true });
  const solver = textWithFile("Solver prototxt (solver.prototxt)", "specification");
  const net = textWithFile("Net prototxt (train/test net)", "specification-net");
  const error = h("p", { class: "error", role: "alert", id: "solver-error" });
  const form = h("form", { class: "panel", "aria-labelledby": "new-solver" },
    h("h2", { id: "new-solver" }, "New solver"), field("Dataset", dataset),
    h("div", { class: "grid2" }, solver.box, net.box),
    h("div", null, h("button", { type: "submit" }, "Create solver")), error);
  const boxes = { specification: solver.text, "specification-net": net.text };
  const names = { specification: "Solver", "specification-net": "Net" };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    for (const box of Object.values(boxes)) box.removeAttribute("aria-invalid");
    try {
      await api("POST", "/solvers", {
        json: { "dataset-id": dataset.value, specification: solver.text.value, "specification-net": net.text.value },
      });
      form.reset();
      draw();
    } catch (e) {
      const where = errorPosition(e.message);
      if (where && boxes[where.key]) {
        error.textContent = `${names[where.key]} prototxt, line ${where.line}, column ${where.column}: ${e.message.replace(/^[^:]*: /, "")}`;
        boxes[where.key].setAttribute("aria-invalid", "true");
        boxes[where.key].setAttribute("aria-errormessage", "solver-error");
        caretAt(boxes[where.key], where.line, where.column);
      } else {
        error.textContent = e.message;
      }
    }
  });
  main.append(h("h1", null, "Solvers"), list, form);

  const sets = (await listAll("/datasets")).filter((d) => !["failed", "canceled"].includes(d["processing-state"]));
  const setNames = new Map(sets.map((d) => [d.id, d.name || d.id]));
  fill(dataset, sets.map((d) => h("option", { value: d.id }, `${d.name || "(unnamed)"} — ${d.layers_type} (${d["processing-state"]})`)));

  async function draw() {
    const items = await listAll("/solvers");
    if (!page.active) return;
    fill(list, table("Solvers, newest first", ["Id", "Dataset", "Kind", "Created", ""], items.map((s) => [
      h("span", { class: "mono" }, s.id),
      h("a", { href: link("datasets", s["dataset-id"]) }, setNames.get(s["dataset-id"]) || s["dataset-id"]),
      s.layers_type,
      when(s["created-at"]),
      h("a", { href: `#/jobs?solver=${encodeURIComponent(s.id)}` }, "Train it"),
    ]), "No solvers yet."));
  }
  await draw();
}
