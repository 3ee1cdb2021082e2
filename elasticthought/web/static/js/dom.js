// DOM helpers. Every string goes in as text (text nodes, textContent, attribute values), never
// as HTML: user data (names, labels, logs, errors) cannot become markup.

/** An element: h("a", {href: "#/x", class: "c", onclick: fn}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children (nodes, or anything else as text; arrays are flattened). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: the label, then the control (ids tie them). */
export function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 10)}`;
  control.id = id;
  const parts = [h("label", { for: id }, labelText), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("div", { id: hintId, class: "muted" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/** A <select> of [value, text] pairs. */
export function select(attrs, options) {
  return h(
    "select",
    attrs,
    options.map(([value, text]) => h("option", { value }, text)),
  );
}

/** A short state label with a class per state. */
export function stateBadge(state) {
  const name = state || "unknown";
  return h("span", { class: `state state-${name.replace(/[^a-z_]/g, "")}` }, name);
}

/** Seconds as "1 h 2 min", "3 min 4 s" or "5 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

/** A Unix time as local date and time. */
export function when(epochSeconds) {
  if (!epochSeconds) return "";
  return new Date(epochSeconds * 1000).toLocaleString();
}

/** Bytes as "12.3 MB". */
export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/** A table: headers (strings; "#" prefix = numeric column) and rows of cells. */
export function table(caption, headers, rows, emptyText = "None yet.", className = null) {
  if (!rows.length) return h("p", { class: "muted" }, emptyText);
  const numeric = headers.map((text) => text.startsWith("#"));
  return h(
    "table",
    { class: className },
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", null, h("tr", null, headers.map((text, i) =>
      h("th", { scope: "col", class: numeric[i] ? "num" : null }, text.replace(/^#/, ""))))),
    h("tbody", null, rows.map((cells) => h("tr", null, cells.map((cell, i) =>
      h("td", { class: numeric[i] ? "num" : null }, cell))))),
  );
}
