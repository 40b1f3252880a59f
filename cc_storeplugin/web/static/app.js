// Copy buttons: <button class="copy" data-copy="#input-id">
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  input.select();
  (navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject())
    .catch(() => document.execCommand("copy"))
    .finally(() => { button.textContent = "Copied"; });
});

// Live progress on a connection's page: poll the JSON API while a run is going.
(function () {
  const box = document.getElementById("run");
  if (!box) return;
  const fmt = (n) => Number(n).toLocaleString();
  async function tick() {
    const resp = await fetch(box.dataset.api, { headers: { Accept: "application/json" } });
    if (!resp.ok) return;
    const body = await resp.json();
    const run = body.last_run || {};
    const p = body.progress || {};
    document.getElementById("run-status").textContent = run.status || "";
    document.getElementById("run-phase").textContent = p.phase ? `(${p.phase})` : "";
    const bar = document.getElementById("progress");
    if (p.total) { bar.max = p.total; bar.value = p.done; }
    document.getElementById("progress-text").textContent = p.total ? `${fmt(p.done)} of ${fmt(p.total)}` : "";
    document.getElementById("eta").textContent = p.eta_s != null ? `about ${Math.ceil(p.eta_s / 60)} min left` : "";
    const status = document.getElementById("status");
    if (status) status.textContent = body.status.replace(/_/g, " ");
    if (run.status === "RUNNING" || run.status === "QUEUED") setTimeout(tick, 2000);
    else if (!box.dataset.reloaded && run.status === "COMPLETE") { box.dataset.reloaded = "1"; location.reload(); }
  }
  setTimeout(tick, 1000);
})();
