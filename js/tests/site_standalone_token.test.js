// The serve page sends the server's token with every request (X-Cellucid-Token).
import assert from "node:assert/strict";
import { test } from "node:test";
import { installDom, installObservers, settle } from "./helpers/dom.js";

const window = installDom();
installObservers();

test("fetchWithToken adds the header (and keeps the caller's), none without a token", async () => {
  document.body.innerHTML = '<h1 id="title"></h1><select id="dataset"></select><span id="selection"></span><div id="app"></div>';
  window.happyDOM.setURL("http://127.0.0.1:1/?token=abc");
  Object.defineProperty(globalThis, "location", { value: window.location, configurable: true });
  const calls = [];
  globalThis.fetch = async (url, init = {}) => {
    calls.push({ url, token: new Headers(init.headers || {}).get("X-Cellucid-Token") });
    return { ok: false, status: 403, json: async () => ({ error: "token" }) };
  };
  const { fetchWithToken } = await import("../standalone/main.js");
  await settle(20);
  // the page itself asked for the datasets with the token, and says why it could not list them
  assert.deepEqual(calls[0], { url: "/_cellucid/datasets", token: "abc" });
  assert.match(document.getElementById("app").textContent, /server answered 403: open the URL printed by 'cellucid-nb serve'/);
  const seen = [];
  const f = fetchWithToken("t0k3n", async (url, init) => { seen.push([url, new Headers(init.headers).get("X-Cellucid-Token"), new Headers(init.headers).get("Accept")]); return "ok"; });
  assert.equal(await f("/x", { headers: { Accept: "application/json" } }), "ok");
  assert.deepEqual(seen, [["/x", "t0k3n", "application/json"]]);
  const plain = fetchWithToken(null, async (url, init) => [url, init]);
  assert.deepEqual(await plain("/y"), ["/y", {}]);
});
