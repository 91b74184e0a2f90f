// ---- one case, rendered on demand from its own embedded JSON
function lazy(i) { return JSON.parse(document.getElementById("d-" + i).textContent); }

function renderCase(i, key) {
  // key: the item whose pictures show first (results_json.item_key: the engine, or "ENGINE:backward")
  const c = CASES[i], L = lazy(i);
  const box = el("div", {class: "case-detail", "data-case": c.id});
  box.appendChild(el("div", {class: "case-head"},
    el("span", {class: "title mono", text: c.id}),
    el("span", {text: c.layer + ", input " + shape(c.input_shape) + " " + c.dtype + ", seed " + c.seed}),
    el("span", {class: "small", text: c.file + (c.line ? ":" + c.line : "")})));
  if (c.description) box.appendChild(el("div", {class: "small", text: c.description}));
  for (const it of ITEMS) {
    const r = c.r[it.key], e = it.label;
    if (!r) continue;
    if (r.verdict !== "pass")
      box.appendChild(el("div", {class: "msg " + r.verdict, "data-item": it.key},
                         el("span", {class: "pill v-" + r.verdict, text: r.verdict}), " ",
                         it.check !== "forward" ? el("span", {class: "pill v-check", text: it.check}) : null,
                         it.check !== "forward" ? " " : null,
                         el("span", {class: "mono", text: r.message || "(no message)"})));
    if (r.xfail)
      box.appendChild(el("div", {class: "msg"}, el("span", {class: "pill v-" + status(r), text: status(r)}), " ",
        (r.verdict === "fail" ? "known bug, expected to fail: " : "marked as a known bug but did not fail (remove the xfail once fixed): ")
        + r.xfail));
    for (const n of r.notes || []) box.appendChild(el("div", {class: "msg", text: e + " note: " + n}));
    if (r.facts) box.appendChild(el("div", {class: "msg", text: e + " ran with: " +
      Object.entries(r.facts).map(([k, v]) => k + "=" + v).join(", ")}));
    if (r.baseline && r.baseline.change)
      box.appendChild(el("div", {class: "msg", text: "vs baseline: " + changeText(it.key, r.baseline, r)}));
  }
  if (c.stack) {
    box.appendChild(el("h3", {text: "Layers of the stack: each layer's error/bound against the propagated bound"}));
    box.appendChild(stackTable(c));
  }
  box.appendChild(el("h3", {text: "Metrics against the float64 oracle (on every element, never downsampled)"}));
  box.appendChild(metricsTable(c));
  // a tab per item compared element by element: its maps where drawn (page_data), else its histogram
  const withPics = ITEMS.filter(it => L.e[it.key] && (L.e[it.key].pics || L.e[it.key].ratio_histogram)).map(it => it.key);
  if (withPics.length) {
    const current = withPics.includes(key) ? key : withPics[0];
    const tabs = el("div", {class: "tabs"});
    const panel = el("div", {class: "pics-holder"});
    for (const k of withPics) {
      const it = itemOf(k);
      tabs.appendChild(el("button", {class: k === current ? "on" : "", type: "button", "data-engine": it.engine,
        "data-check": it.check, "data-item": k,
        onclick: ev => {
          for (const b of tabs.children) b.classList.toggle("on", b === ev.currentTarget);
          panel.replaceChildren(renderItemPics(c, k, L.e[k]));
          box.closest(".detail").dataset.item = k;
          history.replaceState(null, "", itemHash(c, k));
        }}, it.label + " vs oracle: " + status(c.r[k])));
    }
    panel.appendChild(renderItemPics(c, current, L.e[current]));
    box.appendChild(tabs);
    box.appendChild(panel);
  } else {
    box.appendChild(el("p", {class: "small", text: "No heatmap: no engine other than the oracle produced values that "
                                                  + "could be compared element by element (see the messages above)."}));
  }
  const swept = Object.keys(c.swept || {}).length
    ? el("pre", {text: Object.entries(c.swept).map(([k, v]) => k + ": " + JSON.stringify(v)).join("\n")}) : null;
  box.appendChild(el("div", {class: "cols", style: "margin-top:10px"},
    el("div", {class: "narrow"}, el("h3", {text: "Case as written (YAML)"}), el("pre", {text: L.yaml})),
    el("div", {class: "narrow"}, swept ? el("h3", {text: "Swept values of this point"}) : null, swept,
       el("h3", {text: "Keras config of this point"}), el("pre", {text: JSON.stringify(L.config)}),
       el("h3", {text: "Input"}), el("div", {class: "mono", text: shape(c.input_shape) + " " + c.dtype + ", seed " + c.seed})),
    el("div", null, el("h3", {text: "Shapes and parameters, each engine in its own layout"}), shapesTable(c))));
  box.appendChild(el("h3", {text: "Repro"}));
  box.appendChild(el("pre", {text: ITEMS.filter(it => L.e[it.key] && L.e[it.key].repro).map(it => L.e[it.key].repro).join("\n")}));
  for (const it of ITEMS) {
    const det = L.e[it.key] && L.e[it.key].details;
    if (det) box.appendChild(el("details", null, el("summary", {text: it.label + ": traceback"}), el("pre", {text: det})));
  }
  return box;
}

function stackTable(c) {
  // a stack: a row per layer, a column per engine: its error/bound, the culprit (the first layer over its bound)
  // marked, the layers after it "not judged" (they read the culprit's output)
  const es = ITEMS.filter(it => c.r[it.key]);
  const t = el("table", {class: "metrics stack"}, el("tr", null, el("th", {text: "layer"}),
    es.map(it => el("th", {text: it.label}))));
  c.stack.forEach((layer, i) => {
    t.appendChild(el("tr", {"data-layer": i}, el("td", {class: "mono", text: "[" + i + "] " + layer.layer}),
      es.map(it => {
        const r = c.r[it.key], ratios = r.layer_ratios || [];
        const culprit = r.culprit === i;
        const text = i < ratios.length ? fmt(num(ratios[i])) + (culprit ? " culprit" : "")
          : culprit ? "culprit" : r.culprit !== null && r.culprit !== undefined && i > r.culprit ? "not judged" : "\u2013";
        return el("td", {class: "num" + (culprit ? " culprit" : ""), "data-culprit": culprit ? "1" : null,
          title: culprit ? "the first layer over its bound: the layers after it read its output" : null, text: text});
      })));
  });
  return t;
}

function shapesTable(c) {
  // per engine its forward record, else its backward one (both ran the same layer)
  const pick = e => c.r[e] || c.r[itemKey(e, "backward")];
  const es = ENGINES.filter(pick);
  const t = el("table", null, el("tr", null, el("th"), es.map(e => el("th", {text: e}))));
  t.appendChild(el("tr", null, el("th", {text: "output shape"}), es.map(e => el("td", {class: "mono", text: shape(pick(e).output_shape)}))));
  t.appendChild(el("tr", null, el("th", {text: "output dtype"}), es.map(e => el("td", {class: "mono", text: pick(e).output_dtype || "\u2013"}))));
  t.appendChild(el("tr", null, el("th", {text: "parameters"}), es.map(e => el("td", {class: "num", text: pick(e).params === null || pick(e).params === undefined ? "\u2013" : pick(e).params}))));
  t.appendChild(el("tr", null, el("th", {text: "weights"}), es.map(e => {
    const w = pick(e).weight_shapes;
    return el("td", {class: "mono"}, w ? Object.entries(w).map(([k, s]) => el("div", {text: k + " " + shape(s)})) : "\u2013");
  })));
  const grads = es.map(e => (c.r[itemKey(e, "backward")] || {}).gradients);
  if (grads.some(g => g))
    t.appendChild(el("tr", null, el("th", {text: "gradients judged (Keras layout)"}), grads.map(g => el("td", {class: "mono"},
      g ? Object.entries(g).map(([k, m]) => el("div", {text: "d" + k + " " + shape(m.shape)})) : "\u2013"))));
  return t;
}

function metricsTable(c) {
  const backward = ITEMS.some(it => it.check !== "forward" && c.r[it.key]);
  const head = ["engine", "verdict", ...(backward ? ["tensor"] : []), "err/bound", "max |diff|", "max rel", "over bound",
                "worst index", "engine vs oracle", "K", "u", "time"];
  const t = el("table", {class: "metrics"}, el("tr", null, head.map(h => el("th", {text: h}))));
  for (const it of ITEMS) {
    const r = c.r[it.key];
    if (!r) continue;
    const m = r.metrics;
    const tensor = !backward ? null : el("td", {class: "mono", title: it.check === "forward" ? "the layer's output"
      : "the gradient tensor that decided the verdict (a fail), else the one that used most of its error budget",
      text: it.check === "forward" ? "y" : r.tensor ? "d" + r.tensor : "\u2013"});
    t.appendChild(el("tr", {"data-item": it.key}, el("td", {text: it.label}),
      el("td", null, el("span", {class: "pill v-" + r.verdict, text: r.verdict})), tensor,
      el("td", {class: "num", text: m ? fmt(m.max_ratio) : "\u2013"}),
      el("td", {class: "num", text: m ? fmt(m.max_abs) : "\u2013"}),
      el("td", {class: "num", text: m ? fmt(m.max_rel) : "\u2013"}),
      el("td", {class: "num", text: m ? m.n_over + " (" + pct(num(m.share_over)) + ")" : "\u2013"}),
      el("td", {class: "mono", text: m ? shape(m.worst_index) : "\u2013"}),
      el("td", {class: "mono", text: m ? full(m.worst_value) + " vs " + full(m.worst_oracle) : "\u2013"}),
      el("td", {class: "num", text: m ? m.k : "\u2013"}),
      el("td", {class: "num", text: m ? fmt(m.u) : "\u2013"}),
      el("td", {class: "num", text: fmt(r.duration_s * 1000, 2) + " ms"})));
  }
  return t;
}

// ---- pictures of one item
// What a picture's axes are: an output's (the default), or a gradient tensor's (pictures.gradient_view: dx per
// input channel; a kernel per output channel or depth multiplier, taps x input channels; a bias as one strip).
const OUTPUT_VIEW = {tensor: null, channel: "output channel", positions: "spatial positions", border: true};
function viewOf(P) { return P.view || OUTPUT_VIEW; }
function patternText(p, maxRatio, V) {
  if (!p) return "";
  V = V || OUTPUT_VIEW;
  if (!p.n_over) return "All " + p.size + " elements" + (V.tensor ? " of " + V.tensor : "")
                       + " are within the bound; the largest share of the budget used is " + fmt(maxRatio) + ".";
  let s = p.n_over + " of " + p.size + " elements" + (V.tensor ? " of " + V.tensor : "") + " (" + pct(p.n_over / p.size)
        + ") are over the bound";
  if (V.channel) {
    s += ", in " + p.n_channels_over + " of " + p.n_channels + " " + V.channel + "s";
    if (p.n_channels_over < p.n_channels && p.channels_over.length)
      s += " (" + p.channels_over.slice(0, 12).join(", ") + (p.n_channels_over > 12 ? ", \u2026" : "") + ")";
  }
  if (V.positions) s += ", at " + p.positions_over + " of " + p.n_positions + " " + V.positions;
  if (p.border_only) s += " \u2014 only along the border: look at the padding";
  else if (V.channel && p.n_channels_over < p.n_channels)
    s += " \u2014 only some " + V.channel + "s: look at the channel order or the weight layout";
  return s + ".";
}
function legendBar(kind, enc) {
  const W = 220, H = 10, cv = el("canvas", {width: W, height: H, class: "map"}), ctx = cv.getContext("2d");
  let ticks;
  if (kind === "ratio") {
    // piecewise axis: 0..1 linear in sqrt, then 1..1e8 in log
    for (let x = 0; x < W; x++) {
      const t = x / (W - 1), v = t < 0.4 ? Math.pow(t / 0.4, 2) : Math.pow(10, (t - 0.4) / 0.6 * 8);
      ctx.fillStyle = rgb(ratioRGB(v)); ctx.fillRect(x, 0, 1, H);
    }
    ticks = [["0", 0], ["0.25", 0.2], ["1 = bound", 0.4], ["1e4", 0.7], ["1e8", 1]];
  } else {
    const hi = enc.hi, lo = Math.max(enc.lo, hi - 6);
    for (let x = 0; x < W; x++) { ctx.fillStyle = rgb(errRGB(Math.pow(10, lo + (hi - lo) * x / (W - 1)), lo, hi)); ctx.fillRect(x, 0, 1, H); }
    ticks = [[fmt(Math.pow(10, lo), 2), 0], [fmt(Math.pow(10, (lo + hi) / 2), 2), 0.5], [fmt(Math.pow(10, hi), 2), 1]];
  }
  cv.dataset.drawn = "1";
  const lab = el("div", {style: "position:relative;height:14px;width:" + W + "px;font-size:10px;color:#5b6574"});
  for (const [txt, at] of ticks)
    lab.appendChild(el("span", {text: txt, style: "position:absolute;white-space:nowrap;left:" + (at * W) + "px;transform:translateX(" + (at === 0 ? "0" : at === 1 ? "-100%" : "-50%") + ")"}));
  return el("div", {class: "fig"}, el("div", {class: "cap", style: "text-align:left", text: kind === "ratio" ? "error / bound (white: exact)" : "|engine \u2212 oracle| (log scale, white: exact)"}), cv, lab);
}

function drawMap(set, q, k, px, py, marker, label) {
  // one channel k of a map set (h x w cells), each cell px x py screen pixels; q = "err" | "ratio"
  const [h, w] = set.shape, enc = set[q], cs = codes(enc), off = k * h * w;
  const src = document.createElement("canvas");
  src.width = w; src.height = h;
  const sctx = src.getContext("2d"), img = sctx.createImageData(w, h);
  for (let j = 0; j < h * w; j++) {
    const v = value(enc, cs[off + j]);
    const c = q === "ratio" ? ratioRGB(v) : errRGB(v, enc.lo, enc.hi);
    img.data[4 * j] = c[0]; img.data[4 * j + 1] = c[1]; img.data[4 * j + 2] = c[2]; img.data[4 * j + 3] = 255;
  }
  sctx.putImageData(img, 0, 0);
  const cv = el("canvas", {width: w * px, height: h * py, class: "map"});
  const ctx = cv.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(src, 0, 0, w * px, h * py);
  if (marker) {
    const [mr, mc] = marker;
    ctx.lineWidth = 2; ctx.strokeStyle = "#ff00ff";
    ctx.strokeRect(mc * px + 1, mr * py + 1, Math.max(px - 2, 2), Math.max(py - 2, 2));
  }
  cv.dataset.drawn = "1";
  cv.addEventListener("mousemove", ev => {
    const rect = cv.getBoundingClientRect();
    const col = Math.min(w - 1, Math.floor((ev.clientX - rect.left) / rect.width * w));
    const row = Math.min(h - 1, Math.floor((ev.clientY - rect.top) / rect.height * h));
    const [fh, fw] = set.cell, j = off + row * w + col;
    const where = h === 1 ? "position " + range(col, fw) : "row " + range(row, fh) + ", column " + range(col, fw);
    tip.textContent = label + "\n" + where + "\n|diff| \u2248 " + fmt(value(set.err, codes(set.err)[j]), 2)
      + "\nerror/bound \u2248 " + fmt(value(set.ratio, codes(set.ratio)[j]), 2) + (fh * fw > 1 ? "\n(max over the block)" : "");
    tip.style.display = "block"; tip.style.left = (ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 10) + "px";
  });
  cv.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  return cv;
}
function range(i, f) { return f > 1 ? (i * f) + "\u2013" + (i * f + f - 1) : String(i); }

function mapsOf(set, P) {
  // per worst channel, |diff| next to error/bound (2D: an h x w map; 1D: a strip along the sequence)
  const [h, w] = set.shape, out = el("div", {class: "maps"});
  const chMaxR = values(P.channel_max_ratio), chMaxE = values(P.channel_max_err);
  const wa = P.worst_at;
  const px = Math.max(1, Math.min(40, Math.floor(240 / Math.max(h, w))));
  const [gh, gw] = P.grid;
  const folded = P.spatial && P.spatial.length > 2 ? P.spatial.slice(0, -1) : null;   // 3D: depth slices stacked
  const V = viewOf(P);
  const axes = V.rows && P.rank !== 1 ? "rows: " + V.rows + " 0 \u2192 " + (gh - 1) + " top to bottom; columns: " + V.cols
                 + " 0 \u2192 " + (gw - 1) + " left to right"
             : P.rank === 1 ? (V.cols || "position") + " 0 \u2192 " + (gw - 1) + " left to right"
             : folded ? "rows: the leading axes " + folded.join("\u00d7") + " flattened (slices of " + folded[folded.length - 1]
                 + " rows stacked top to bottom); columns: the last axis 0 \u2192 " + (gw - 1) + " left to right"
             : "rows: h 0 \u2192 " + (gh - 1) + " top to bottom; columns: w 0 \u2192 " + (gw - 1) + " left to right";
  set.channels.forEach((ch, k) => {
    let marker = null;
    if (wa && wa.channel === ch) marker = [Math.floor(wa.pos[0] / set.cell[0]), Math.floor(wa.pos[1] / set.cell[1])];
    const label = V.channel ? (V.tensor ? V.tensor + ", " : "") + (V === OUTPUT_VIEW ? "channel" : V.channel) + " " + ch
                            : V.tensor || "channel " + ch;
    const cc = Math.floor(ch / (P.channel_cell || 1));
    const pxs = P.rank === 1 ? Math.max(1, Math.min(40, Math.floor(560 / w))) : px, pys = P.rank === 1 ? 18 : px;
    out.appendChild(el("div", null,
      el("div", {class: "label"}, el("b", {text: label}),
         " \u2014 max error/bound " + fmt(chMaxR[cc], 2) + ", max |diff| " + fmt(chMaxE[cc], 2)),
      el("div", {class: "chan"},
        el("div", {class: "fig"}, drawMap(set, "err", k, pxs, pys, marker, label), el("div", {class: "cap", text: "|engine \u2212 oracle|"})),
        el("div", {class: "fig"}, drawMap(set, "ratio", k, pxs, pys, marker, label), el("div", {class: "cap", text: "error / bound"}))),
      el("div", {class: "cap", style: "text-align:left", text: axes})));
  });
  return out;
}

function channelBars(P) {
  const v = values(P.channel_max_ratio), C = v.length;
  const W = Math.min(640, Math.max(180, C * 10)), H = 70, bw = W / C;
  const top = Math.max(1, ...v.filter(Number.isFinite).map(x => Math.log10(Math.max(x, 1e-3)))) + 0.3, bottom = -3;
  const y = x => H - 12 - (Math.log10(Math.max(x, 1e-3)) - bottom) / (top - bottom) * (H - 14);
  const cv = el("canvas", {width: W, height: H, class: "map"}), ctx = cv.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  v.forEach((x, i) => {
    const yy = Number.isFinite(x) ? y(x) : 2;
    ctx.fillStyle = rgb(ratioRGB(Number.isFinite(x) ? Math.max(x, 1e-6) : x));
    ctx.fillRect(i * bw + (bw > 3 ? 1 : 0), yy, Math.max(1, bw - (bw > 3 ? 2 : 0)), H - 12 - yy);
  });
  ctx.strokeStyle = "#c0392b"; ctx.setLineDash([4, 3]); ctx.beginPath(); ctx.moveTo(0, y(1)); ctx.lineTo(W, y(1)); ctx.stroke();
  ctx.setLineDash([]); ctx.fillStyle = "#5b6574"; ctx.font = "10px sans-serif";
  const every = Math.max(1, Math.ceil(C / 16));
  for (let i = 0; i < C; i += every) ctx.fillText(String(i * (P.channel_cell || 1)), i * bw + 1, H - 1);
  ctx.fillStyle = "#c0392b"; ctx.fillText("bound", W - 34, y(1) - 3);
  cv.dataset.drawn = "1";
  return el("div", {class: "fig"}, el("div", {class: "cap", style: "text-align:left",
    text: "max error/bound per " + (viewOf(P).channel || "channel") + " (log scale; dashed: the bound)"}), cv);
}

function histOf(H) {
  // page_data.compact_histogram: the edges once in meta, the counts of the filled span from bin H.from on
  if (H.log10_edges) return H;
  const E = DATA.meta.hist_edges, counts = new Array(E.length - 1).fill(0);
  H.counts.forEach((n, j) => { counts[H.from + j] = n; });
  return {log10_edges: E, counts: counts, zero: H.zero || 0, below: H.below || 0, above: H.above || 0,
          nonfinite: H.nonfinite || 0};
}
function allWithin(n) { return {n_over: 0, size: n}; }   // page_data drops a pattern with no element over the bound
function histogram(H, n) {
  H = histOf(H);
  const E = H.log10_edges, counts = H.counts, bins = [];
  if (H.zero) bins.push({label: "0", n: H.zero, v: 0});
  if (H.below) bins.push({label: "<1e" + E[0], n: H.below, v: Math.pow(10, E[0] - 1)});
  let first = counts.findIndex(x => x > 0), last = counts.length - 1 - [...counts].reverse().findIndex(x => x > 0);
  const one = E.indexOf(0);
  if (first < 0) { first = one - 2; last = one + 1; }
  first = Math.min(first, one - 2); last = Math.max(last, one + 1);
  for (let j = first; j <= last; j++) bins.push({n: counts[j], v: Math.pow(10, (E[j] + E[j + 1]) / 2), a: E[j]});
  if (H.above) bins.push({label: "\u22651e" + E[E.length - 1], n: H.above, v: Math.pow(10, E[E.length - 1] + 1)});
  if (H.nonfinite) bins.push({label: "inf/NaN", n: H.nonfinite, v: Infinity});
  const W = Math.max(260, Math.min(560, bins.length * 22)), HH = 130, bw = W / bins.length;
  const max = Math.max(...bins.map(b => b.n), 1);
  const cv = el("canvas", {width: W, height: HH, class: "map"}), ctx = cv.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, HH);
  ctx.font = "10px sans-serif";
  bins.forEach((b, i) => {
    const hgt = b.n ? Math.max(2, b.n / max * (HH - 34)) : 0, x = i * bw;
    ctx.fillStyle = rgb(ratioRGB(b.v === 0 ? 0 : Math.max(b.v, 1e-6)));
    if (b.v === 0) ctx.fillStyle = "#cfd5dc";
    ctx.fillRect(x + 1, HH - 14 - hgt, bw - 2, hgt);
    ctx.fillStyle = "#1d2430";
    if (b.n) ctx.fillText(String(b.n), x + 1, HH - 17 - hgt);
    ctx.fillStyle = "#5b6574";
    const lab = b.label || (Number.isInteger(b.a) ? (b.a === 0 ? "1" : "1e" + b.a) : "");
    if (lab) ctx.fillText(lab, x + 1, HH - 2);
    if (b.a === 0) {
      ctx.strokeStyle = "#c0392b"; ctx.setLineDash([4, 3]); ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, HH - 12); ctx.stroke(); ctx.setLineDash([]);
      ctx.fillStyle = "#c0392b"; ctx.fillText("bound", x + 3, 10);
    }
  });
  cv.dataset.drawn = "1";
  return el("div", {class: "fig"}, el("div", {class: "cap", style: "text-align:left",
    text: "error/bound of all " + n + " elements (half-decade bins; right of the dashed line fails)"}), cv);
}

function worstTable(rows) {
  const t = el("table", null, el("tr", null, ["index", "engine", "oracle", "|diff|", "bound", "error/bound"].map(h => el("th", {text: h}))));
  for (const w of rows || [])
    t.appendChild(el("tr", null, el("td", {class: "mono", text: shape(w.index)}), el("td", {class: "num mono", text: full(w.value)}),
      el("td", {class: "num mono", text: full(w.oracle)}), el("td", {class: "num", text: fmt(w.abs_err)}),
      el("td", {class: "num", text: fmt(w.bound)}),
      el("td", {class: "num" + (num(w.ratio) > 1 ? " warn" : ""), text: fmt(w.ratio)})));
  return t;
}

function renderItemPics(c, key, L) {
  // a forward item: the output's pictures (or, a pass far under its bound, its histogram); a backward item: a picker
  // of its gradient tensors
  return L.pics && L.pics.tensors ? renderGradients(c, key, L) : L.pics ? renderPics(c, key, L) : renderPlain(c, key, L);
}
function noMaps(maxRatio) {
  return el("div", {class: "small nomaps", text: "No maps: this pass used " + fmt(maxRatio) + " of its error budget; maps are "
    + "drawn for fails, known bugs and passes at " + DATA.meta.near_bound + " of the budget or more. Its worst element is in "
    + "the metrics table, its five worst and the error pattern in results.json."});
}
function plainBody(box, pattern, maxRatio, V, hist, n) {
  box.appendChild(el("div", {class: "pattern" + (pattern.n_over ? " warn" : ""), text: patternText(pattern, maxRatio, V)}));
  box.appendChild(noMaps(maxRatio));
  if (hist) box.appendChild(el("div", {class: "cols", style: "margin-top:12px"}, histogram(hist, n)));
}
function renderPlain(c, key, L) {
  const r = c.r[key], it = itemOf(key), n = r.metrics ? r.metrics.n_elements : "?";
  const box = el("div", {class: "pics", "data-engine": it.engine});
  plainBody(box, L.pattern || allWithin(n), ratioOf(r), OUTPUT_VIEW, L.ratio_histogram, n);
  return box;
}
function renderPics(c, key, L) {
  const P = L.pics, r = c.r[key], it = itemOf(key);
  const box = el("div", {class: "pics", "data-engine": it.engine});
  const [gh, gw] = P.grid;
  const down = P.worst.cell[0] * P.worst.cell[1] > 1 ? "; downsampled for the picture: 1 cell = max of "
    + P.worst.cell.join("\u00d7") + " outputs" : "";
  const text = "Output " + (r.output_shape ? shape(r.output_shape) : "") + ": " + P.channels + " channels on a "
      + (P.rank === 1 ? gw + "-long sequence" : P.spatial && P.spatial.length > 2 ? P.spatial.join("\u00d7")
         + " grid (drawn as " + gh + "\u00d7" + gw + ")" : gh + "\u00d7" + gw + " grid") + "; each map shows the maximum over the batch of " + P.batch + down
      + ". The magenta box marks the worst element. Hover a map for values.";
  const n = r.metrics ? r.metrics.n_elements : "?";
  picsBody(box, P, L.pattern || allWithin(n), ratioOf(r), text, L.ratio_histogram, n, L.worst_elements);
  return box;
}
function picsBody(box, P, pattern, maxRatio, text, hist, n, worst) {
  // the pattern sentence, legends and per-channel bars, the worst channels' maps (and all on demand), the ratio
  // histogram and the worst elements: of an output or of one gradient tensor (its labels in P.view)
  const V = viewOf(P), ws = P.worst, chans = V.channel ? V.channel + "s" : "elements";
  box.appendChild(el("div", {class: "pattern" + (pattern && pattern.n_over ? " warn" : ""), text: patternText(pattern, maxRatio, V)}));
  box.appendChild(el("div", {class: "small", text: text}));
  box.appendChild(el("div", {class: "cols", style: "margin:8px 0"}, legendBar("err", ws.err), legendBar("ratio", ws.ratio),
                     V.channel ? channelBars(P) : null));
  box.appendChild(el("h3", {text: !V.channel ? "All elements" : ws.channels.length < P.channels
    ? "The " + ws.channels.length + " worst of " + P.channels + " " + chans : "All " + chans}));
  box.appendChild(mapsOf(ws, P));
  if (P.all) {
    const holder = el("div");
    const sel = el("select", {onchange: () => draw()},
      el("option", {value: "ratio", text: "error / bound"}), el("option", {value: "err", text: "|engine \u2212 oracle|"}));
    const draw = () => holder.replaceChildren(mapsOfQ(P.all, P, sel.value));
    const btn = el("button", {type: "button", class: "link", text: "show all " + P.channels + " " + chans,
      onclick: () => { btn.hidden = true; sel.hidden = false; draw(); }});
    sel.hidden = true;
    const cellNote = P.all.cell[0] * P.all.cell[1] > 1 ? " (1 cell = max of " + P.all.cell.join("\u00d7") + " elements)" : "";
    box.appendChild(el("div", {style: "margin-top:10px"}, btn, " ", sel, el("span", {class: "small", text: cellNote}), holder));
  } else if (ws.channels.length < P.channels) {
    box.appendChild(el("div", {class: "small", text: "(Too many " + chans + " to show each one; the bar chart above covers all of them.)"}));
  }
  box.appendChild(el("div", {class: "cols", style: "margin-top:12px"},
    histogram(hist, n),
    el("div", null, el("div", {class: "cap small", text: "worst elements (by error/bound)"}), worstTable(worst))));
}

// ---- a backward item: per gradient tensor judged (dx, dkernel, ..., dbias) its metrics, and a picker for its maps
function renderGradients(c, key, L) {
  const G = L.pics, r = c.r[key], it = itemOf(key), grads = r.gradients || {};
  const box = el("div", {class: "pics", "data-engine": it.engine, "data-check": it.check});
  const names = Object.keys(grads).concat(Object.keys(G.tensors).filter(n => !(n in grads)));
  box.appendChild(el("div", {class: "small", text: "The backward check: each gradient of the layer with the case's "
    + "upstream gradient dy, judged tensor by tensor (dx, the kernels, dbias) against the oracle's, each element within "
    + "its own bound" + (r.verdict === "fail" && r.tensor ? "; judging stopped at d" + r.tensor
      + ", the first tensor that failed (those after it were not judged)" : "") + "."}));
  const picker = el("div", {class: "tensor-picker", role: "tablist"}, el("span", {class: "small", text: "gradient tensor:"}));
  const holder = el("div", {class: "tensor-holder"});
  const show = (name, initial) => {
    for (const b of picker.querySelectorAll("button")) b.classList.toggle("on", b.dataset.tensor === name);
    holder.replaceChildren(tensorPics(name, G.tensors[name], grads[name]));
    TENSOR_OF.set(c.id + "\n" + key, name);
    if (!initial) history.replaceState(null, "", itemHash(c, key));
  };
  for (const name of names) {
    const m = grads[name], q = m ? num(m.max_ratio) : null;
    const c0 = q === null ? [227, 229, 233] : q > 1 ? ratioRGB(Math.max(q, 10)) : ratioRGB(Math.max(q, 1e-6));
    picker.appendChild(el("button", {type: "button", "data-tensor": name, disabled: !G.tensors[name],
      title: G.tensors[name] ? "d" + name + ": max error/bound " + fmt(q) + (m ? ", " + m.n_over + " of " + m.n_elements
        + " elements over the bound" : "") : "d" + name + ": no pictures", onclick: () => show(name)},
      el("span", {class: "mono", text: "d" + name}), " ",
      el("span", {class: "q", style: "background:" + rgb(c0) + ";color:" + (dark(c0) ? "#fff" : "#1d2430"),
                  text: q === null ? "\u2013" : fmt(q, 2)})));
  }
  box.appendChild(gradientTable(grads, r.tensor));
  box.appendChild(picker);
  box.appendChild(holder);
  const asked = TENSOR_OF.get(c.id + "\n" + key);
  const first = asked in G.tensors ? asked : G.tensor in G.tensors ? G.tensor : names.find(n => G.tensors[n]);
  if (first) show(first, true);
  return box;
}
function gradientTable(grads, decided) {
  const head = ["tensor", "shape", "err/bound", "max |diff|", "max rel", "over bound", "worst index", "engine vs oracle", "K", "u"];
  const t = el("table", {class: "gradients"}, el("tr", null, head.map(h => el("th", {text: h}))));
  for (const [name, m] of Object.entries(grads)) {
    t.appendChild(el("tr", {"data-tensor": name, class: name === decided ? "decided" : null},
      el("td", {class: "mono", text: "d" + name}), el("td", {class: "mono", text: shape(m.shape)}),
      el("td", {class: "num" + (num(m.max_ratio) > 1 ? " warn" : ""), text: fmt(m.max_ratio)}),
      el("td", {class: "num", text: fmt(m.max_abs)}), el("td", {class: "num", text: fmt(m.max_rel)}),
      el("td", {class: "num", text: m.n_over + " (" + pct(num(m.share_over)) + ")"}),
      el("td", {class: "mono", text: shape(m.worst_index)}),
      el("td", {class: "mono", text: full(m.worst_value) + " vs " + full(m.worst_oracle)}),
      el("td", {class: "num", text: m.k}), el("td", {class: "num", text: fmt(m.u)})));
  }
  return t;
}
function tensorPics(name, T, m) {
  const box = el("div", {class: "tensor-pics", "data-tensor": name}), n = m ? m.n_elements : "?";
  if (!T.pics) {   // a passing tensor far under its bound: its sentence and histogram
    const V = {tensor: "d" + name, channel: null, positions: null, border: false};
    box.appendChild(el("h3", {text: "d" + name + ": max error/bound " + fmt(m ? m.max_ratio : null)
      + (m ? ", max |diff| " + fmt(m.max_abs) : "")}));
    plainBody(box, T.pattern || allWithin(n), m ? num(m.max_ratio) : null, V, T.ratio_histogram, n);
    return box;
  }
  const P = T.pics, V = viewOf(P), [gh, gw] = P.grid;
  const down = P.worst.cell[0] * P.worst.cell[1] > 1 ? "; downsampled for the picture: 1 cell = max of "
    + P.worst.cell.join("\u00d7") + " elements" : "";
  const text = name === "x"
    ? "dx " + shape(P.shape) + " (the input's layout): " + P.channels + " input channels on a "
      + (P.rank === 1 ? gw + "-long sequence" : P.spatial && P.spatial.length > 2 ? P.spatial.join("\u00d7") + " grid (drawn as "
         + gh + "\u00d7" + gw + ")" : gh + "\u00d7" + gw + " grid") + "; each map shows the maximum over the batch of " + P.batch
    : V.channel
      ? V.tensor + " " + shape(P.shape) + " (Keras layout: kernel axes, input channels, " + V.channel + "s): per " + V.channel
        + " a map of " + (P.rank === 1 ? gw + " input channels" : gh + " taps (rows) \u00d7 " + gw + " input channels (columns)")
      : V.tensor + " " + shape(P.shape) + ": its " + gw + " elements in one strip";
  box.appendChild(el("h3", {text: V.tensor + ": max error/bound " + fmt(m ? m.max_ratio : null)
    + (m ? ", max |diff| " + fmt(m.max_abs) : "")}));
  picsBody(box, P, T.pattern || allWithin(n), m ? num(m.max_ratio) : null, text + down
    + ". The magenta box marks the worst element. Hover a map for values.", T.ratio_histogram, n, T.worst_elements);
  return box;
}
function mapsOfQ(set, P, q) {
  const [h, w] = set.shape, out = el("div", {class: "allgrid"});
  const px = Math.max(1, Math.min(16, Math.floor(84 / Math.max(h, w))));
  const wa = P.worst_at;
  set.channels.forEach((ch, k) => {
    const marker = wa && wa.channel === ch ? [Math.floor(wa.pos[0] / set.cell[0]), Math.floor(wa.pos[1] / set.cell[1])] : null;
    const pxs = P.rank === 1 ? Math.max(1, Math.min(16, Math.floor(420 / w))) : px, pys = P.rank === 1 ? 6 : px;
    const V = viewOf(P), label = (V === OUTPUT_VIEW ? "channel" : V.channel || V.tensor) + " " + ch;
    out.appendChild(el("div", {class: "fig"}, drawMap(set, q, k, pxs, pys, marker, label), el("div", {class: "cap", text: String(ch)})));
  });
  return out;
}

