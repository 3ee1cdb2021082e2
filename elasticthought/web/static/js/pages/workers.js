// Workers (who runs what) and the caller's queue (what waits, and why).
import { FINAL_STATES, api, listAll } from "../api.js";
import { fill, h, stateBadge, table, when } from "../dom.js";
import { link } from "../nav.js";

const POLL_MS = 2000;
const QUEUED_TYPES = [
  ["datafiles", "datafile", null],
  ["datasets", "dataset", "datasets"],
  ["training-jobs", "training job", "jobs"],
  ["classify-jobs", "classify job", null],
];

function capabilities(caps) {
  return Object.entries(caps || {}).map(([key, value]) =>
    `${key}: ${Array.isArray(value) ? value.join(", ") || "none" : typeof value === "object" ? JSON.stringify(value) : value}`).join("; ");
}

function jobRef(id) {
  const type = String(id).split(":")[0];
  if (type === "training-job") return h("a", { href: link("jobs", id) }, id);
  if (type === "dataset") return h("a", { href: link("datasets", id) }, id);
  return h("span", { class: "mono" }, id);
}

export async function workers(main, _params, page) {
  const workerList = h("div");
  const queue = h("div");
  main.append(h("h1", null, "Workers and queue"), h("h2", null, "Workers"), workerList,
    h("h2", null, "Your queued and running jobs"), queue);
  page.every(POLL_MS, async () => {
    const found = (await api("GET", "/workers?all=true", { signal: page.signal })).items;
    if (!page.active) return false;
    fill(workerList, table(null, ["Worker", "Host", "#PID", "State", "Alive", "Offers", "Running (yours)", "#Running (all)", "Last seen"],
      found.map((w) => [h("span", { class: "mono" }, w.id), w.host, w.pid, w.state, w.alive ? "yes" : "no",
        capabilities(w.capabilities), w.running.length ? w.running.map((id) => h("div", null, jobRef(id))) : "—",
        w["running-count"], when(w["last-seen"])]), "No workers: start one with `elasticthought worker` or `serve --workers N`."));
    const rows = [];
    for (const [path, what] of QUEUED_TYPES) {
      for (const doc of await listAll(`/${path}`)) {
        if (FINAL_STATES.includes(doc["processing-state"])) continue;
        rows.push([what, jobRef(doc.id), stateBadge(doc["processing-state"]),
          doc["pending-reason"] || (doc["processing-state"] === "pending" ? "waiting for a free worker" : ""),
          doc["worker-id"] || "", when(doc["created-at"])]);
      }
    }
    if (!page.active) return false;
    fill(queue, table(null, ["Type", "Id", "State", "Waiting because", "Worker", "Queued"], rows, "Nothing queued or running."));
    return true;
  });
}
