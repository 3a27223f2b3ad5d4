// Shared by the dashboard pages: the token (from the URL fragment #token=..., kept in this tab's
// sessionStorage, never sent in a URL), JSON fetches, and small formatters. Amounts stay decimal
// strings from the API: they are shown as they come, never parsed into floats for display.
"use strict";
const tf = (() => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("tallyflow.token", fromHash); history.replaceState(null, "", location.pathname); }
  const token = sessionStorage.getItem("tallyflow.token") || "";
  async function get(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    return body;
  }
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) { if (k === "class") e.className = v; else e.setAttribute(k, v); }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
    return e;
  }
  function table(head, rows, numeric = []) {
    const t = el("table");
    t.append(el("tr", {}, ...head.map((h, i) => el("th", numeric.includes(i) ? { class: "num" } : {}, h))));
    for (const r of rows) t.append(el("tr", {}, ...r.map((c, i) => el("td", numeric.includes(i) ? { class: "num" } : {}, c))));
    return t;
  }
  function bar(fraction) {
    const pct = Math.min(100, Math.max(0, fraction * 100));
    return el("div", { class: "bar", title: (fraction * 100).toFixed(1) + "%" },
      el("div", { class: fraction > 1 ? "over" : "", style: `width:${pct}%` }));
  }
  function fill(id, ...nodes) { const s = document.getElementById(id); s.replaceChildren(...nodes); }
  function fail(id, e) { fill(id, el("p", { class: "error" }, String(e.message || e))); }
  return { get, el, table, bar, fill, fail, token };
})();
