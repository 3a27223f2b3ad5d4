// The operator's page: /#token=<TALLYFLOW_ADMIN_TOKEN>. Refreshes every 5 s.
"use strict";
const { el, table, fill, fail } = tf;
let chart = null;

async function refresh() {
  const p = await tf.get("/api/pipeline");
  document.getElementById("asof").textContent = `updated ${new Date().toISOString()}`;
  const counts = p.counts.filter((c) => c.what !== "rejects");
  fill("counts", table(["what", "detail", "rows", "last landed"], counts.map((c) => [c.what, c.detail, String(c.n), c.last_loaded]), [2]));
  const rejects = p.counts.filter((c) => c.what === "rejects");
  fill("rejects", rejects.length ? table(["reason", "rows"], rejects.map((c) => [c.detail, String(c.n)]), [1]) : el("p", {}, "No rejects."));
  fill("lag", p.loader_lag_error ? el("p", { class: "error" }, p.loader_lag_error)
    : table(["topic", "partition", "records behind"], p.loader_lag.map((l) => [l.topic, String(l.partition), String(l.records)]), [1, 2]));
  fill("settlement",
    el("p", {}, "Last checkpoint: ", p.last_checkpoint ? `${p.last_checkpoint.at}` : "none yet"),
    p.unsettled_periods.length ? table(["period", "ends", "due (settlement window)", "open invoices"],
      p.unsettled_periods.map((x) => [x.period, x.period_end, x.due_at, String(x.open_customers)]), [3]) : el("p", {}, "Every period is finalized."));
  fill("alerts", p.customers_with_alerts.length ? table(["customer", "alerts (40 days)"],
    p.customers_with_alerts.map((c) => [c.customer, String(c.alerts)]), [1]) : el("p", {}, "No open alerts."));
  const labels = p.events_per_second.map((x) => x.second.slice(11, 19));
  const data = p.events_per_second.map((x) => x.events);
  if (chart === null) {
    chart = new Chart(document.getElementById("rate"), {
      type: "line", data: { labels, datasets: [{ label: "events/s", data, borderColor: "#3b6fd8", pointRadius: 0 }] },
      options: { animation: false, scales: { y: { beginAtZero: true } } },
    });
  } else { chart.data.labels = labels; chart.data.datasets[0].data = data; chart.update(); }
}

async function customers() {
  const { customers } = await tf.get("/api/customers");
  fill("customers", table(["customer", "plan"], customers.map((c) => [
    el("a", { href: `/customers/${encodeURIComponent(c.id)}` }, c.id), c.subscriptions.map((s) => s.plan).join(", ")])));
}

refresh().catch((e) => fail("counts", e));
customers().catch((e) => fail("customers", e));
setInterval(() => refresh().catch((e) => fail("counts", e)), 5000);
