// The account: who is signed in, the API tokens (revoke any; revoking this tab's signs out).
import { api, listAll, session } from "../api.js";
import { fill, h, table, when } from "../dom.js";
import { go } from "../nav.js";

export async function account(main, _params, page) {
  const me = await api("GET", "/users/me", { signal: page.signal });
  const tokens = h("div");
  const error = h("p", { class: "error", role: "alert" });
  main.append(h("h1", null, "Account"),
    h("dl", { class: "facts" },
      h("dt", null, "Username"), h("dd", null, me.username),
      h("dt", null, "E-mail"), h("dd", null, me.email || "—"),
      h("dt", null, "Member since"), h("dd", null, when(me["created-at"]))),
    h("h2", null, "API tokens"),
    h("p", { class: "muted" }, "This tab signs in with its own token, kept in this tab's session storage only. Revoking a token ends every client that uses it."),
    tokens, error);
  async function draw() {
    const items = await listAll("/tokens");
    const mine = session.get();
    fill(tokens, table(null, ["Name", "Created", "Expires", ""], items.map((t) => [
      [t.name || "(unnamed)", t.id === mine.tokenId ? h("strong", null, " (this session)") : null],
      when(t["created-at"]), when(t["expires-at"]),
      h("button", { type: "button", class: "danger", "aria-label": `Revoke token ${t.name || t.id}`, onclick: () => revoke(t) }, "Revoke"),
    ])));
  }
  async function revoke(token) {
    error.textContent = "";
    try {
      await api("DELETE", `/tokens/${encodeURIComponent(token.id)}`);
      if (token.id === session.get().tokenId) {
        session.clear();
        go("signin", "Token revoked: you are signed out.");
        return;
      }
      await draw();
    } catch (e) {
      error.textContent = e.message;
    }
  }
  await draw();
}
