"use strict";
(function () {
const T0 = performance.now();
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const ENGINES = DATA.meta.engines;
// The matrix's columns, each an item of every case: per engine its forward item and, where the run has any, its
// backward item beside it (html.items). A case's records (c.r) and pictures are keyed by item: the engine's name for
// the forward check, "ENGINE:backward" for the backward one (results_json.item_key).
const ITEMS = DATA.meta.items || ENGINES.map(e => ({key: e, engine: e, check: "forward", label: e}));
const ITEM = Object.fromEntries(ITEMS.map(it => [it.key, it]));
function itemKey(engine, check) { return !check || check === "forward" ? engine : engine + ":" + check; }
function itemOf(key) { return ITEM[key] || {key: key, engine: key, check: "forward", label: key}; }
// The gradient tensor shown per (case id, backward item key), chosen in its picker or by a link's &tensor=NAME.
const TENSOR_OF = new Map();
function itemHash(c, key) {
  const it = itemOf(key), tensor = TENSOR_OF.get(c.id + "\n" + key);
  return "#case=" + encodeURIComponent(c.id) + "&engine=" + encodeURIComponent(it.engine)
    + (it.check !== "forward" ? "&check=" + encodeURIComponent(it.check) : "")
    + (it.check !== "forward" && tensor ? "&tensor=" + encodeURIComponent(tensor) : "");
}
const CASES = DATA.cases;
// page_data: a record's metrics, and each gradient tensor's, arrive as a row of values in meta.metric_keys' order
const MKEYS = DATA.meta.metric_keys || [];
function metricsOf(row) {
  return Array.isArray(row) ? Object.fromEntries(MKEYS.map((k, i) => [k, row[i] === undefined ? null : row[i]])) : row;
}
for (const c of CASES) for (const key in c.r) {
  const r = c.r[key];
  if (r.metrics) r.metrics = metricsOf(r.metrics);
  if (r.gradients) for (const name in r.gradients) r.gradients[name] = metricsOf(r.gradients[name]);
}
const ORDER = {fail: 0, error: 1, xpass: 2, xfail: 3, rejected: 4, skip: 5, pass: 6};
// A pair's status is its outcome, decided in Python by the one policy pytest and the CLI use (runner.outcome):
// its verdict, except where the case's known bug holds (an expected fail is "xfail", a pass is "xpass").
function status(r) {
  return r ? r.outcome || r.verdict : "none";   // page_data leaves out an outcome equal to the verdict
}
const tip = document.getElementById("tip");

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return e;
}
function num(v) { return v === null || v === undefined ? null : Number(v); }
function fmt(v, d) {
  v = num(v); d = d || 3;
  if (v === null) return "\u2013";
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "\u221e" : "-\u221e";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(d)));
  return v.toExponential(d - 1).replace("e+", "e");
}
function full(v) {
  v = num(v);
  if (v === null || !Number.isFinite(v)) return fmt(v);
  return String(Number(v.toPrecision(9)));
}
function shape(s) { return s ? "(" + s.join(", ") + (s.length === 1 ? "," : "") + ")" : "\u2013"; }
function pct(x) { return x >= 0.995 ? "100%" : (x * 100 < 1 ? (x * 100).toPrecision(1) : (x * 100).toFixed(0)) + "%"; }

// ---- colours: error/bound <= 1 is a teal ramp (sqrt of the share used), > 1 a red ramp over 8 decades
const OK_STOPS = [[226, 243, 236], [150, 212, 195], [44, 162, 140], [0, 92, 86]];
const BAD_STOPS = [[253, 190, 110], [239, 101, 52], [189, 22, 34], [88, 0, 24]];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function lerp(a, b, t) { return [0, 1, 2].map(i => Math.round(a[i] + (b[i] - a[i]) * t)); }
function ramp(stops, t) {
  t = Math.max(0, Math.min(1, t));
  const n = stops.length - 1, i = Math.min(n - 1, Math.floor(t * n));
  return lerp(stops[i], stops[i + 1], t * n - i);
}
function ratioRGB(v) {
  if (v === 0) return [255, 255, 255];
  if (!Number.isFinite(v)) return [0, 0, 0];
  if (v <= 1) return ramp(OK_STOPS, Math.sqrt(v));
  return ramp(BAD_STOPS, Math.log10(v) / 8);
}
function errRGB(v, lo, hi) {
  if (v === 0) return [255, 255, 255];
  if (!Number.isFinite(v)) return [255, 0, 255];
  const bottom = Math.max(lo, hi - 6);
  return ramp(VIRIDIS, hi > bottom ? (Math.log10(v) - bottom) / (hi - bottom) : 1);
}
function rgb(c) { return "rgb(" + c.join(",") + ")"; }
function dark(c) { return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] < 140; }

// ---- compact arrays: uint8 codes of log10 values (0 = exactly 0, 255 = inf/NaN)
const decoded = new WeakMap();
function codes(enc) {
  if (!decoded.has(enc)) {
    const s = atob(enc.b64), a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    decoded.set(enc, a);
  }
  return decoded.get(enc);
}
function value(enc, code) {
  if (code === 0) return 0;
  if (code === 255) return Infinity;
  return Math.pow(10, enc.lo + (code - 1) / 253 * (enc.hi - enc.lo));
}
function values(enc) { return Array.from(codes(enc), c => value(enc, c)); }

// ---- the matrix
function ratioOf(r) { return r && r.metrics ? num(r.metrics.max_ratio) : null; }
function cellLook(r) {
  if (!r) return {bg: "#fff", fg: "#999", text: "\u2013"};
  const q = ratioOf(r);
  if (status(r) === "xfail")
    return {bg: "repeating-linear-gradient(135deg,#b0413e 0 5px,#c9625e 5px 10px)", fg: "#fff", text: "known bug"};
  if (status(r) === "xpass") return {bg: "#7a3fb0", fg: "#fff", text: "XPASS"};
  if (r.verdict === "pass") {
    const c = ratioRGB(q === null ? 0 : Math.max(q, 1e-6));
    return {bg: rgb(c), fg: dark(c) ? "#fff" : "#1d2430", text: q === null ? "pass" : fmt(q, 2)};
  }
  if (r.verdict === "fail") {
    const c = q !== null && q > 1 ? ratioRGB(Math.max(q, 10)) : [192, 57, 43];
    return {bg: rgb(c), fg: "#fff", text: "FAIL " + (q !== null && q > 1 ? fmt(q, 2) : "")};
  }
  if (r.verdict === "skip") return {bg: "#e3e5e9", fg: "#4d5562", text: "skip"};
  if (r.verdict === "rejected") return {bg: "#e6dcf3", fg: "#4b2f73", text: "rejected"};
  return {bg: "#d35400", fg: "#fff", text: "ERROR"};
}
function worstOrder(c) {
  let o = 9, q = -1;
  for (const it of ITEMS) {
    const r = c.r[it.key];
    if (!r) continue;
    o = Math.min(o, ORDER[status(r)] === undefined ? 1 : ORDER[status(r)]);
    const x = ratioOf(r);
    if (x !== null) q = Math.max(q, x);
  }
  return [o, q];
}
function changes(c) {
  // [item key, its baseline field] of every changed item of the case
  const out = [];
  for (const it of ITEMS) {
    const b = c.r[it.key] && c.r[it.key].baseline;
    if (b && b.change) out.push([it.key, b]);
  }
  return out;
}
function changeText(key, b, r) {
  const e = itemOf(key).label;
  if (b.change === "new") return e + ": new";
  if (b.change === "verdict") return e + ": " + b.verdict + " \u2192 " + r.verdict;
  return e + ": ratio " + fmt(b.max_ratio, 2) + " \u2192 " + fmt(ratioOf(r), 2) + " (\u00d7" + fmt(b.factor, 2) + ")";
}

// The matrix is made of div rows (CSS grid), not a <table>: rows off screen skip layout (content-visibility),
// which keeps a 1000-case page responsive; a table would lay out every row on each change.
function shortChange(key, b, r) {
  const e = itemOf(key).label;
  if (b.change === "new") return e + " new";
  if (b.change === "verdict") return e + " " + b.verdict + "\u2192" + r.verdict;
  return e + " \u00d7" + fmt(b.factor, 2);
}
const tbody = document.getElementById("matrix-body");
document.getElementById("matrix").style.setProperty("--engines", String(ITEMS.length));
const rows = [], details = [], keys = [];
CASES.forEach((c, i) => {
  const tr = el("div", {class: "mrow case-row", "data-i": i, "data-case": c.id});
  tr.appendChild(el("div", {class: "tog", text: "\u25b8"}));
  tr.appendChild(el("div", {class: "cid", title: c.id + "\n" + c.file + (c.line ? ":" + c.line : "")},
                    el("div", {class: "mono", text: c.id})));
  tr.appendChild(el("div", {text: c.layer}));
  tr.appendChild(el("div", {text: c.dtype}));
  tr.appendChild(el("div", {class: "mono", text: shape(c.input_shape)}));
  for (const it of ITEMS) {
    const r = c.r[it.key], look = cellLook(r);
    tr.appendChild(el("div", {class: "cell", "data-engine": it.engine, "data-check": it.check, "data-item": it.key,
                             "data-verdict": r ? r.verdict : "none", "data-status": status(r),
                             style: "background:" + look.bg + ";color:" + look.fg,
                             title: r ? it.label + ": " + status(r) + (r.tensor ? " (worst tensor d" + r.tensor + ")" : "")
                                        + (r.xfail ? " (known bug: " + r.xfail + ")" : "")
                                        + (r.message ? "\n" + r.message : "") : ""}, look.text));
  }
  if (DATA.meta.baseline) {
    const ch = changes(c);
    tr.appendChild(el("div", {class: "chg", title: ch.map(([e, b]) => changeText(e, b, c.r[e])).join("\n")},
                         ch.length ? "\u0394 " + ch.map(([e, b]) => shortChange(e, b, c.r[e])).join(", ") : ""));
  }
  rows.push(tr);
  const msgs = ITEMS.map(it => c.r[it.key] ? status(c.r[it.key]) + " " + (c.r[it.key].message || "") + " "
                                               + (c.r[it.key].xfail || "") : "").join(" ");
  keys.push((c.id + " " + c.file + " " + c.layer + " " + c.dtype + " " + msgs).toLowerCase());
});

function sortKey(mode) {
  const idx = CASES.map((c, i) => i);
  if (mode === "file") return idx;
  if (mode === "ratio") return idx.sort((a, b) => worstOrder(CASES[b])[1] - worstOrder(CASES[a])[1] || a - b);
  if (mode === "changed") return idx.sort((a, b) => changes(CASES[b]).length - changes(CASES[a]).length || a - b);
  return idx.sort((a, b) => {
    const [oa, qa] = worstOrder(CASES[a]), [ob, qb] = worstOrder(CASES[b]);
    return oa - ob || qb - qa || a - b;
  });
}
function applyView() {
  const layer = document.getElementById("f-layer").value;
  const verdict = document.getElementById("f-verdict").value;
  const text = document.getElementById("f-text").value.trim().toLowerCase();
  const order = sortKey(document.getElementById("f-sort").value);
  const frag = document.createDocumentFragment();
  let shown = 0;
  for (const i of order) {
    const c = CASES[i];
    const vs = ITEMS.map(it => c.r[it.key] && status(c.r[it.key]));
    let ok = (!layer || c.layer === layer) && (!text || keys[i].includes(text));
    if (ok && verdict === "notpass") ok = vs.some(v => v && v !== "pass");
    else if (ok && verdict === "changed") ok = changes(c).length > 0;
    else if (ok && verdict) ok = vs.includes(verdict);
    rows[i].hidden = !ok;
    if (details[i]) details[i].hidden = !ok || !rows[i].classList.contains("open");
    frag.appendChild(rows[i]);
    if (details[i]) frag.appendChild(details[i]);
    if (ok) shown++;
  }
  tbody.appendChild(frag);
  document.getElementById("f-count").textContent = "showing " + shown + " of " + CASES.length + " cases";
}

function toggle(i, key) {
  const tr = rows[i];
  if (tr.classList.contains("open") && (!key || details[i].dataset.item === key)) {
    tr.classList.remove("open"); tr.firstChild.textContent = "\u25b8"; details[i].hidden = true;
    history.replaceState(null, "", "#");
    return;
  }
  openCase(i, key, false);
}
function openCase(i, key, scroll) {
  // key: the item to show first (results_json.item_key), or null for the case's worst
  const t0 = performance.now();
  const tr = rows[i], c = CASES[i];
  if (!details[i]) {
    details[i] = el("div", {class: "detail"}, el("div"));
    tr.after(details[i]);
  }
  const d = details[i];
  const want = key || defaultItem(c);
  if (d.dataset.item !== want || !d.firstChild.firstChild) {
    d.firstChild.replaceChildren(renderCase(i, want));
    d.dataset.item = want;
  }
  d.hidden = false; tr.hidden = false;
  tr.classList.add("open"); tr.firstChild.textContent = "\u25be";
  history.replaceState(null, "", itemHash(c, want));
  if (scroll && tr.getBoundingClientRect().top > window.innerHeight * 0.7) tr.scrollIntoView({block: "start"});
  document.documentElement.setAttribute("data-detail-ms", (performance.now() - t0).toFixed(1));
}
function defaultItem(c) {
  // the worst item of an engine other than the reference (a failure before a pass, then the largest error/bound)
  let best = null, bestKey = null;
  for (const it of ITEMS) {
    const r = c.r[it.key];
    if (!r || it.engine === DATA.meta.reference) continue;
    const key = [ORDER[status(r)] === undefined ? 1 : ORDER[status(r)], -(ratioOf(r) || 0)];
    if (bestKey === null || key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) { best = it.key; bestKey = key; }
  }
  return best || ITEMS[0].key;
}
tbody.addEventListener("click", ev => {
  const tr = ev.target.closest(".case-row");
  if (!tr) return;
  const cell = ev.target.closest(".cell");
  toggle(Number(tr.dataset.i), cell ? cell.dataset.item : null);
});
