// Navigation and the message line, shared by the shell (main.js) and the pages.

let keepNotice = false;

/** A message for the user in the live region (text only); "" clears it. */
export function notify(message) {
  document.getElementById("notice").textContent = message || "";
}

/** Go to a route ("jobs/<id>"); `message` stays shown on the page it leads to. */
export function go(path, message) {
  if (message !== undefined) {
    notify(message);
    keepNotice = true;
  }
  if (location.hash === `#/${path}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = `#/${path}`;
}

/** Called by the shell on each navigation: clears the message unless `go` set one. */
export function navigated() {
  if (!keepNotice) notify("");
  keepNotice = false;
}

/** The route of one resource page. */
export function link(route, id) {
  return `#/${route}/${encodeURIComponent(id)}`;
}
