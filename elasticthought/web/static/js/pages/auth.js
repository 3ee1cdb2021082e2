// Sign up, sign in (a fresh API token per browser session), sign out (revokes that token).
import { api, basic, session } from "../api.js";
import { field, h } from "../dom.js";
import { go } from "../nav.js";

const TOKEN_LIFETIME = 12 * 3600; // seconds: a browser session's token

/** Trade username + password for a new token and keep it for this tab. */
export async function startSession(username, password) {
  const token = await api("POST", "/tokens", {
    headers: { Authorization: basic(username, password) },
    json: { name: `web app (${navigator.userAgent.split(" ")[0]})`, "expires-in": TOKEN_LIFETIME },
    noRedirect: true,
  });
  session.save({ token: token.token, tokenId: token.id, username, userId: token["user-id"] });
}

export async function signOut() {
  const current = session.get();
  if (current) {
    try {
      await api("DELETE", `/tokens/${encodeURIComponent(current.tokenId)}`, { noRedirect: true });
    } catch {
      /* already revoked or expired: nothing left to revoke */
    }
  }
  session.clear();
}

function credentialsForm(title, submitText, withEmail, onSubmit) {
  const username = h("input", { type: "text", name: "username", autocomplete: "username", required: true });
  const email = withEmail ? h("input", { type: "email", name: "email", autocomplete: "email" }) : null;
  const password = h("input", {
    type: "password", name: "password", required: true, minlength: withEmail ? 8 : null,
    autocomplete: withEmail ? "new-password" : "current-password",
  });
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, submitText);
  const form = h("form", { class: "panel narrow", "aria-labelledby": "auth-title" },
    field("Username", username),
    withEmail ? field("E-mail (optional)", email) : null,
    field("Password", password, withEmail ? "At least 8 characters." : null),
    error, h("div", null, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await onSubmit(username.value.trim(), password.value, email ? email.value.trim() : "");
    } catch (e) {
      error.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  return [h("h1", { id: "auth-title" }, title), form];
}

export function signIn(main) {
  main.append(
    ...credentialsForm("Sign in", "Sign in", false, async (username, password) => {
      await startSession(username, password);
      go("jobs");
    }),
    h("p", null, "No account yet? ", h("a", { href: "#/signup" }, "Sign up")),
  );
}

export function signUp(main) {
  main.append(
    ...credentialsForm("Sign up", "Create account", true, async (username, password, email) => {
      const body = { username, password };
      if (email) body.email = email;
      await api("POST", "/users", { json: body, noRedirect: true });
      await startSession(username, password);
      go("datafiles", `Welcome, ${username}: start by uploading a datafile.`);
    }),
    h("p", null, "Have an account? ", h("a", { href: "#/signin" }, "Sign in")),
  );
}
