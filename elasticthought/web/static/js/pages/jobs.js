// Training jobs: the list (state, progress, ETA, engine), a job's page with live plots, log
// tail, evaluation, snapshots and downloads, and several jobs compared on one plot.
import { FINAL_STATES, FINISHED, api, download, listAll, stream } from "../api.js";
import { destroy, lineChart, points, setSeries, testSeries } from "../charts.js";
import { duration, field, fill, h, select, stateBadge, table, when } from "../dom.js";
import { go, link, notify } from "../nav.js";

const LIST_POLL_MS = 2000;
const JOB_POLL_MS = 1000;
const LOG_TAIL_CHARS = 200_000;

/** A short handle for a job (its id's last characters). */
export function jobLabel(job) {
  return `job …${String(job.id).slice(-8)}`;
}

function progressOf(job) {
  const last = job["last-iteration"] ?? 0;
  const max = job["max-iterations"];
  const bar = h("progress", { max: max || 1, value: max ? Math.min(last, max) : 0, "aria-label": `Progress of ${jobLabel(job)}` });
  return h("span", { class: "row" }, bar, max ? `${last} / ${max}` : `${last}`);
}

/** Seconds left at the last measured speed, as the status endpoint computes it. */
function etaOf(job) {
  if (job["eta-seconds"] !== undefined) return job["eta-seconds"];
  if (job["processing-state"] !== "processing") return null;
  const rate = Number(job["iter-per-s"] || 0);
  if (!rate || !job["max-iterations"]) return null;
  return (job["max-iterations"] - (job["last-iteration"] || 0)) / rate;
}

export async function jobs(main, _params, page) {
  const chosen = new Set();
  const list = h("div");
  const compareButton = h("button", { type: "button", class: "secondary", disabled: true }, "Compare selected");
  compareButton.addEventListener("click", () => go(`compare/${[...chosen].map(encodeURIComponent).join(",")}`));

  const solver = h("select", { name: "solver-id", required: true });
  const engine = select({ name: "engine" }, [["torch", "torch (PyTorch engine)"], ["caffe", "caffe (BVLC Caffe)"]]);
  const priority = h("input", { type: "number", name: "priority", value: 0, step: 1 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-labelledby": "new-job" },
    h("h2", { id: "new-job" }, "Train"), field("Solver", solver), field("Engine", engine),
    field("Priority", priority, "Higher runs first."), h("div", null, h("button", { type: "submit" }, "Start training")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const job = await api("POST", "/training-jobs", {
        json: { "solver-id": solver.value, engine: engine.value, priority: Number(priority.value || 0) },
      });
      go(link("jobs", job.id).slice(2));
    } catch (e) {
      error.textContent = e.message;
    }
  });
  main.append(h("h1", null, "Training jobs"), list, h("div", { class: "row" }, compareButton), form);

  const solvers = await listAll("/solvers");
  fill(solver, solvers.map((s) => h("option", { value: s.id }, `${s.id} (${s.layers_type})`)));
  const wanted = page.query.get("solver");
  if (wanted) solver.value = wanted;

  page.every(LIST_POLL_MS, async () => {
    const items = await listAll("/training-jobs");
    if (!page.active) return false;
    fill(list, table("Training jobs, newest first", ["Compare", "Job", "State", "Progress", "ETA", "Engine", "Created"],
      items.map((job) => {
        const box = h("input", { type: "checkbox", checked: chosen.has(job.id), "aria-label": `Compare ${jobLabel(job)}` });
        box.addEventListener("change", () => {
          if (box.checked) chosen.add(job.id);
          else chosen.delete(job.id);
          compareButton.disabled = chosen.size < 2;
        });
        return [box, h("a", { href: link("jobs", job.id) }, jobLabel(job)), stateBadge(job["processing-state"]),
          progressOf(job), duration(etaOf(job)), job.engine, when(job["created-at"])];
      }), "No training jobs yet."));
    return items.some((j) => !FINAL_STATES.includes(j["processing-state"]));
  });
}

function fact(term, value) {
  return value === null || value === undefined || value === "" ? null : [h("dt", null, term), h("dd", null, value)];
}

function evaluationFacts(evaluation) {
  if (!evaluation) return h("p", { class: "muted" }, "The evaluation of the final model appears when the job finishes.");
  return h("dl", { class: "facts", id: "evaluation" },
    fact("Accuracy", typeof evaluation.accuracy === "number" ? `${(evaluation.accuracy * 100).toFixed(1)} %` : null),
    fact("Correct", evaluation.count !== undefined ? `${evaluation.correct} of ${evaluation.count} test images` : null),
    fact("Test loss", typeof evaluation.loss === "number" ? evaluation.loss.toFixed(4) : null));
}

export async function job(main, [id], page) {
  const path = `/training-jobs/${encodeURIComponent(id)}`;
  await api("GET", path, { signal: page.signal }); // 404 -> "Not found"
  const heading = h("h1", null, "Training job");
  const facts = h("div");
  const actions = h("div", { class: "row" });
  const evaluation = h("div");
  const snapshots = h("div");
  const loss = lineChart({ id: "loss-chart", title: "Training loss", yTitle: "loss" });
  const lr = lineChart({ id: "lr-chart", title: "Learning rate", yTitle: "lr" });
  const tests = lineChart({ id: "test-chart", title: "Test outputs (accuracy, test loss)", yTitle: "value" });
  page.onLeave(() => [loss, lr, tests].forEach((c) => destroy(c.chart)));
  const log = h("pre", { class: "log", id: "log", tabindex: 0, "aria-label": "Training log (live tail)" });
  main.append(heading, facts, actions,
    h("h2", null, "Plots"), h("div", { class: "grid2" }, loss.box, lr.box, tests.box),
    h("h2", null, "Evaluation"), evaluation,
    h("h2", null, "Snapshots"), snapshots,
    h("h2", null, "Log"), log);

  let state = null;
  let actionsFor = null;
  let snapshotCount = -1;

  const drawActions = (status) => {
    const key = `${status.state}`;
    if (key === actionsFor) return;
    actionsFor = key;
    const final = FINAL_STATES.includes(status.state);
    fill(actions,
      final ? null : h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel"),
      status.state === FINISHED ? h("button", { type: "button", onclick: () => save(`${path}/model`, "model.caffemodel") }, "Download model") : null,
      status.state === FINISHED ? h("a", { href: `#/classifiers?job=${encodeURIComponent(id)}` }, "Create a classifier") : null,
      h("button", { type: "button", class: "secondary", onclick: remove }, "Delete"));
  };
  async function save(url, name) {
    try {
      await download(url, name);
    } catch (e) {
      notify(e.message);
    }
  }
  async function cancel() {
    try {
      await api("POST", `${path}/cancel`);
      notify("Cancel requested.");
    } catch (e) {
      notify(e.message);
    }
  }
  async function remove() {
    if (!window.confirm("Delete this training job with its model, snapshots and logs?")) return;
    try {
      await api("DELETE", path);
      go("jobs", "Training job deleted.");
    } catch (e) {
      notify(e.message);
    }
  }

  async function drawSnapshots(final) {
    const items = (await api("GET", `${path}/snapshots`, { signal: page.signal })).items;
    if (items.length === snapshotCount && !final) return;
    snapshotCount = items.length;
    fill(snapshots, table(null, ["#Iteration", "Model", "Solver state"], items.map((s) => [
      s.iteration,
      s.caffemodel ? h("button", { type: "button", class: "secondary", onclick: () => save(`${path}/snapshots/${encodeURIComponent(s.caffemodel.name)}`, s.caffemodel.name) }, `${s.caffemodel.name}`) : "",
      s.solverstate ? h("button", { type: "button", class: "secondary", onclick: () => save(`${path}/snapshots/${encodeURIComponent(s.solverstate.name)}`, s.solverstate.name) }, `${s.solverstate.name}`) : "",
    ]), "No snapshots yet."));
  }

  page.every(JOB_POLL_MS, async () => {
    const [status, metrics] = await Promise.all([
      api("GET", `${path}/status`, { signal: page.signal }),
      api("GET", `${path}/metrics`, { signal: page.signal }),
    ]);
    if (!page.active) return false;
    state = status.state;
    const final = FINAL_STATES.includes(state);
    heading.textContent = `Training ${jobLabel(status)}`;
    const testOutputs = (status["test-outputs"] || []).at(-1);
    fill(facts, h("dl", { class: "facts" },
      fact("State", stateBadge(state)),
      fact("Progress", progressOf(status)),
      fact("ETA", final ? null : duration(status["eta-seconds"]) || "unknown yet"),
      fact("Engine", [status.engine, status["engine-version"] ? ` — ${status["engine-version"]}` : ""]),
      fact("Loss", typeof status.loss === "number" ? status.loss.toFixed(4) : null),
      fact("Learning rate", typeof status.lr === "number" ? status.lr.toPrecision(4) : null),
      fact("Last test", testOutputs ? Object.entries(testOutputs.outputs).map(([k, v]) => `${k} ${Number(v).toFixed(4)}`).join(", ") : null),
      fact("Waiting because", status["pending-reason"]),
      fact("Attempts", status.attempts),
      fact("Started", when(status["started-at"])),
      fact("Finished", when(status["finished-at"])),
      fact("Problem", status["processing-log"] ? h("span", { class: "error" }, status["processing-log"]) : null),
      fact("Id", h("span", { class: "mono" }, status.id))));
    drawActions(status);
    const train = metrics.train || { iteration: [], loss: [], lr: [] };
    setSeries(loss.chart, [{ label: "training loss", data: points(train.iteration, train.loss) }]);
    setSeries(lr.chart, [{ label: "learning rate", data: points(train.iteration, train.lr) }]);
    setSeries(tests.chart, testSeries(metrics));
    fill(evaluation, evaluationFacts(status.evaluation));
    await drawSnapshots(final);
    return !final;
  });
  followLog();

  async function followLog() {
    while (page.active) {
      try {
        const response = await stream(`${path}/logs?follow=true`, page.signal);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        log.replaceChildren();
        let size = 0;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
          log.append(document.createTextNode(value));
          size += value.length;
          if (size > LOG_TAIL_CHARS * 1.5) {
            log.textContent = log.textContent.slice(-LOG_TAIL_CHARS);
            size = LOG_TAIL_CHARS;
          }
          if (atBottom) log.scrollTop = log.scrollHeight;
        }
      } catch (e) {
        if (!page.active) return;
        if (e.status === 404) return;
      }
      if (FINAL_STATES.includes(state)) return;
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
  }
}

export async function compare(main, [ids], page) {
  const wanted = ids.split(",").map(decodeURIComponent).filter(Boolean);
  const lossChart = lineChart({ id: "compare-loss-chart", title: "Training loss", yTitle: "loss" });
  const testChart = lineChart({ id: "compare-test-chart", title: "Test outputs", yTitle: "value" });
  page.onLeave(() => [lossChart, testChart].forEach((c) => destroy(c.chart)));
  const legend = h("div");
  main.append(h("h1", null, `Comparing ${wanted.length} training jobs`), legend,
    h("div", { class: "grid2" }, lossChart.box, testChart.box));
  page.every(LIST_POLL_MS, async () => {
    const all = await Promise.all(wanted.map((id) => api("GET", `/training-jobs/${encodeURIComponent(id)}/metrics`, { signal: page.signal })));
    if (!page.active) return false;
    fill(legend, table(null, ["Job", "State", "#Training points", "#Test points"], all.map((m) => [
      h("a", { href: link("jobs", m.id) }, jobLabel(m)), stateBadge(m.state),
      (m.train || {}).iteration?.length ?? 0, (m.test || {}).iteration?.length ?? 0])));
    setSeries(lossChart.chart, all.map((m) => ({ label: `${jobLabel(m)} loss`, data: points(m.train.iteration, m.train.loss) })));
    setSeries(testChart.chart, all.flatMap((m) => testSeries(m, `${jobLabel(m)} `)));
    return all.some((m) => !FINAL_STATES.includes(m.state));
  });
}
