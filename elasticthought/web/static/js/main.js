// The app shell: hash routes (#/jobs/<id>), the signed-in header, one page at a time. A page is
// `render(main, params, page)`; `page` gives it an abort signal, polling and leave hooks, so
// nothing of it keeps running after the user moves on.
import { session, setUnauthorizedHandler } from "./api.js";
import { fill, h } from "./dom.js";
import { go, navigated, notify } from "./nav.js";
import * as account from "./pages/account.js";
import * as auth from "./pages/auth.js";
import * as classify from "./pages/classify.js";
import * as data from "./pages/data.js";
import * as jobs from "./pages/jobs.js";
import * as solvers from "./pages/solvers.js";
import * as workers from "./pages/workers.js";

const ROUTES = [
  [/^signin$/, auth.signIn, false],
  [/^signup$/, auth.signUp, false],
  [/^datafiles$/, data.datafiles, true],
  [/^datasets$/, data.datasets, true],
  [/^datasets\/([^/]+)$/, data.dataset, true],
  [/^solvers$/, solvers.solvers, true],
  [/^jobs$/, jobs.jobs, true],
  [/^jobs\/([^/]+)$/, jobs.job, true],
  [/^compare\/([^/]+)$/, jobs.compare, true],
  [/^classifiers$/, classify.classifiers, true],
  [/^classifiers\/([^/]+)$/, classify.classifyPage, true],
  [/^workers$/, workers.workers, true],
  [/^account$/, account.account, true],
];

const main = document.getElementById("main");
let current = null;

/** The per-page context: abort signal, polling loops and leave hooks. */
function newPage() {
  const controller = new AbortController();
  const timers = new Set();
  const hooks = [];
  return {
    signal: controller.signal,
    get active() {
      return !controller.signal.aborted;
    },
    /** Run `fn` now and again `ms` after each run ends, until it returns false or we leave. */
    every(ms, fn) {
      const loop = async () => {
        if (!this.active) return;
        let again = true;
        try {
          again = (await fn()) !== false;
        } catch (error) {
          if (this.active && error.name !== "AbortError") notify(error.message);
        }
        if (again && this.active) {
          const timer = setTimeout(() => {
            timers.delete(timer);
            loop();
          }, ms);
          timers.add(timer);
        }
      };
      loop();
    },
    onLeave(fn) {
      hooks.push(fn);
    },
    leave() {
      controller.abort();
      timers.forEach(clearTimeout);
      hooks.forEach((fn) => fn());
    },
  };
}

function showHeader() {
  const who = session.get();
  document.getElementById("nav").hidden = !who;
  document.getElementById("signout").hidden = !who;
  document.getElementById("who").textContent = who ? `Signed in as ${who.username}` : "";
}

function markNav(path) {
  for (const link of document.querySelectorAll("#nav a")) {
    const target = link.getAttribute("href").slice(2);
    const here = path === target || path.startsWith(`${target}/`) ||
      (target === "jobs" && path.startsWith("compare/"));
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  if (current) current.leave();
  current = null;
  showHeader();
  if (!path) {
    go(session.get() ? "jobs" : "signin");
    return;
  }
  for (const [pattern, render, needsUser] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (needsUser && !session.get()) {
      go("signin");
      return;
    }
    markNav(path);
    const page = newPage();
    page.query = new URLSearchParams(query || "");
    current = page;
    fill(main);
    try {
      await render(main, match.slice(1).map(decodeURIComponent), page);
    } catch (error) {
      if (page.active) {
        const title = error.status === 404 ? "Not found" : "Something went wrong";
        fill(main, h("h1", null, title), h("p", { class: "error", role: "alert" }, error.message));
      }
    }
    main.focus({ preventScroll: true });
    return;
  }
  fill(main, h("h1", null, "Not found"), h("p", null, "No page here. "), h("a", { href: "#/jobs" }, "Training jobs"));
}

setUnauthorizedHandler(() => {
  if (!session.get()) return;
  session.clear();
  go("signin", "Your session ended (the token was revoked or expired): sign in again.");
});

document.getElementById("signout").addEventListener("click", async () => {
  await auth.signOut();
  go("signin", "Signed out: the token was revoked.");
});

window.addEventListener("hashchange", () => {
  navigated();
  route();
});

// Pages and tests can tell the app is up.
document.documentElement.dataset.app = "ready";
route();
