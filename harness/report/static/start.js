// ---- filters, initial view, URL hash (#case=ID&engine=NAME)
for (const id of ["f-layer", "f-verdict", "f-sort"]) document.getElementById(id).addEventListener("change", applyView);
document.getElementById("f-text").addEventListener("input", applyView);
applyView();
// What the reader sees first, before a #case=... link scrolls: the summary (the browser test reads this).
const sumBox = document.getElementById("summary").getBoundingClientRect();
document.documentElement.setAttribute("data-summary-visible",
  String(sumBox.height > 0 && sumBox.top < window.innerHeight && sumBox.bottom > 0));
function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const cov = document.getElementById("coverage");
  if (cov && p.has("coverage")) { cov.open = true; cov.scrollIntoView({block: "start"}); return; }
  const id = p.get("case");
  if (!id) return;
  const i = CASES.findIndex(c => c.id === id);
  if (i >= 0) openCase(i, p.get("engine"), true);
}
fromHash();
window.addEventListener("hashchange", fromHash);
document.documentElement.setAttribute("data-render-ms", (performance.now() - T0).toFixed(1));
document.documentElement.setAttribute("data-load-ms", performance.now().toFixed(1));
if (document.documentElement.getAttribute("data-state") !== "error") document.documentElement.setAttribute("data-state", "ready");
})();
