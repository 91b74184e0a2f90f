// ---- filters, initial view, URL hash (#case=ID&engine=NAME; a backward item: &check=backward[&tensor=NAME])
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
  if (i < 0) return;
  const key = p.get("engine") ? itemKey(p.get("engine"), p.get("check")) : null;
  if (key && p.get("tensor")) {
    TENSOR_OF.set(id + "\n" + key, p.get("tensor"));
    if (details[i]) delete details[i].dataset.item;   // redraw: the tensor shown may differ
  }
  openCase(i, key, true);
}
fromHash();
window.addEventListener("hashchange", fromHash);
document.documentElement.setAttribute("data-render-ms", (performance.now() - T0).toFixed(1));
document.documentElement.setAttribute("data-load-ms", performance.now().toFixed(1));
if (document.documentElement.getAttribute("data-state") !== "error") document.documentElement.setAttribute("data-state", "ready");
})();
