// The REST API, called with the signed-in user's token. The token lives in sessionStorage
// (this tab only, gone when it closes), never in a cookie: every request carries it in the
// Authorization header, and fetch runs with credentials "omit", so no cross-site form can ride
// on it.

const KEY = "elasticthought.session";

export const session = {
  /** {token, tokenId, username, userId} or null. */
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
      return null;
    }
  },
  save(value) {
    sessionStorage.setItem(KEY, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};
/** What to do when the token stops working (revoked, expired). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function authHeaders(extra) {
  const headers = new Headers(extra || {});
  const current = session.get();
  if (current && current.token && !headers.has("Authorization")) {
    headers.set("Authorization", `Token ${current.token}`);
  }
  return headers;
}

async function errorOf(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body.error);
  } catch {
    /* not JSON: keep the status text */
  }
  return new ApiError(response.status, detail);
}

/** Call the API: api("POST", "/datasets", {json: {...}}) -> parsed JSON (or text, or null). */
export async function api(method, path, options = {}) {
  const headers = authHeaders(options.headers);
  let body;
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  const response = await fetch(path, {
    method,
    headers,
    body,
    credentials: "omit",
    cache: "no-store",
    signal: options.signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !options.noRedirect) onUnauthorized(error);
    throw error;
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** The streaming response of a GET (e.g. a followed log), or an ApiError. */
export async function stream(path, signal) {
  const response = await fetch(path, {
    headers: authHeaders(),
    credentials: "omit",
    cache: "no-store",
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** POST a multipart form with upload progress (fetch cannot report it): onProgress(0..1). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.withCredentials = false;
    const current = session.get();
    if (current && current.token) xhr.setRequestHeader("Authorization", `Token ${current.token}`);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* keep null */
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body);
      } else {
        if (xhr.status === 401) onUnauthorized();
        reject(new ApiError(xhr.status, body && body.detail ? String(body.detail) : xhr.statusText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network error during upload")));
    xhr.send(form);
  });
}

/** Download an API file (it needs the token, so no plain link): save it as `filename`. */
export async function download(path, filename) {
  const response = await fetch(path, { headers: authHeaders(), credentials: "omit" });
  if (!response.ok) throw await errorOf(response);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** HTTP Basic credentials for sign-in (UTF-8, base64). */
export function basic(username, password) {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return `Basic ${btoa(text)}`;
}

/** Every item of a paged list (newest first). */
export async function listAll(path, max = 1000) {
  const page = await api("GET", `${path}?limit=${Math.min(max, 1000)}`);
  return page.items;
}

export const FINAL_STATES = ["finished_successfully", "failed", "canceled"];
export const FINISHED = "finished_successfully";
