// The customer's page: /customers/{id}#token=... (a token from `tallyflow token create`).
"use strict";
const customer = decodeURIComponent(location.pathname.split("/").pop());
const api = (p) => tf.get(`/api/customers/${encodeURIComponent(customer)}${p}`);
const { el, table, bar, fill, fail } = tf;
document.getElementById("who").textContent = customer;

async function usage() {
  const u = await api("/usage");
  document.getElementById("asof").textContent = `as of ${u.as_of}`;
  fill("totals",
    el("div", {}, "Cost so far ", el("span", { class: "big", id: "cost-so-far" }, u.cost_so_far), " ", u.currency || ""),
    el("div", {}, "Projected for the period ", el("span", { class: "big", id: "projected-cost" }, u.projected_cost), " ", u.currency || ""),
    el("p", { class: "muted" }, `${u.period ? `${u.period} (${u.period_start.slice(0, 10)} to ${u.period_end.slice(0, 10)})` : "No period yet"}: ${(Number(u.elapsed_fraction) * 100).toFixed(1)}% of the period elapsed; the projection carries the run rate to its end.`));
  fill("meters", u.meters.length ? table(
    ["meter", "quantity", "included", "allowance used", "billable", "cost so far", "projected"],
    u.meters.map((m) => [
      m.meter + (m.filter ? ` {${m.filter}}` : ""), m.quantity, m.included_units,
      Number(m.included_units) > 0 ? bar(Number(m.quantity) / Number(m.included_units)) : "—",
      m.billable, m.cost_so_far, m.projected_cost,
    ]), [1, 2, 4, 5, 6]) : el("p", {}, "No usage this period yet."));
}

async function credits() {
  const [b, a] = await Promise.all([api("/balance"), api("/alerts")]);
  const grants = b.grants || [];
  const granted = Number(b.total.granted), consumed = Number(b.total.consumed);  // only for the bar's width
  const used = granted > 0 ? consumed / granted : 0;
  const thresholds = a.thresholds.credits.map((t) => [t, used >= Number(t) ? "reached" : "not reached"]);
  fill("credits", grants.length ? el("div", {},
    el("div", {}, "Remaining ", el("span", { class: "big", id: "credits-remaining" }, b.total.remaining), " credits"),
    bar(used),
    table(["grant", "granted", "consumed", "remaining", "status", "expires"],
      grants.map((g) => [g.grant_id, g.granted, g.consumed, g.remaining, g.status, g.expires_at || "never"]), [1, 2, 3]),
    thresholds.length ? table(["alert threshold", "status"], thresholds.map(([t, s]) => [`${(Number(t) * 100).toFixed(0)}%`,
      el("span", { class: s === "reached" ? "status-fired" : "status-ok" }, s)])) : "")
    : el("p", {}, "No prepaid credits."));
  const rows = a.alerts.map((x) => [x.at, x.kind, x.subject, x.threshold, x.observed, x.limit_value, x.baseline]);
  fill("alerts", rows.length ? table(["when", "kind", "what", "threshold", "observed", "limit", "baseline"], rows, [3, 4, 5, 6])
    : el("p", {}, "No alerts in the last 90 days."));
}

async function daily() {
  const d = await api("/usage/daily");
  const days = [...new Set(d.days.map((x) => x.day))].sort();
  const meters = [...new Set(d.days.map((x) => x.meter))].sort();
  const palette = ["#3b6fd8", "#d8583b", "#2b9a66", "#a35bd1", "#c9a227", "#4aa3c7"];
  new Chart(document.getElementById("daily"), {
    type: "bar",
    data: {
      labels: days,
      datasets: meters.map((m, i) => ({
        label: m, backgroundColor: palette[i % palette.length],
        data: days.map((day) => { const r = d.days.find((x) => x.day === day && x.meter === m); return r ? Number(r.quantity) : 0; }),
      })),
    },
    options: { animation: false, responsive: true, scales: { x: { stacked: false }, y: { beginAtZero: true } } },
  });
}

async function invoices() {
  const { invoices } = await api("/invoices");
  fill("invoices", invoices.length ? el("div", {}, ...invoices.map((inv) => el("details", { open: "" },
    el("summary", {}, `${inv.period} · ${inv.status} · total ${inv.total} ${inv.currency}`),
    table(["line", "meter", "quantity", "billable", "amount"],
      inv.lines.map((l) => [l.type, (l.meter || "") + (l.filter ? ` {${l.filter}}` : ""), l.quantity, l.billable, l.amount]), [2, 3, 4]),
    ...inv.lines.filter((l) => l.breakdown).map((l) => el("div", {}, el("p", { class: "muted" }, `${l.meter || l.type}: breakdown`),
      table(Object.keys(l.breakdown[0]), l.breakdown.map((r) => Object.values(r).map(String)))))))) : el("p", {}, "No invoices yet."));
}

usage().catch((e) => fail("meters", e));
credits().catch((e) => fail("credits", e));
daily().catch((e) => fail("daily-error", e));
invoices().catch((e) => fail("invoices", e));
