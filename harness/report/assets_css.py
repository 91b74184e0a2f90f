"""The report page's stylesheet (inlined: the page opens from disk with no network)."""

CSS = r"""
:root { --ok:#1b7f79; --fail:#c0392b; --skip:#8a8f98; --rej:#8e6bbf; --err:#d35400; --line:#d9dde3;
        --bg:#f6f7f9; --ink:#1d2430; --mut:#5b6574; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--ink);
       background:var(--bg); }
header { background:#1d2430; color:#fff; padding:12px 20px; display:flex; gap:18px; align-items:baseline; flex-wrap:wrap; }
header h1 { font-size:18px; margin:0; }
header .meta { color:#b8c1cf; font-size:12px; }
main { padding:14px 20px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 14px; margin-bottom:14px; }
.top { display:flex; gap:14px; align-items:stretch; flex-wrap:wrap; }
.top > section { flex:1 1 560px; }
h2 { font-size:15px; margin:0 0 8px; }
h3 { font-size:13px; margin:10px 0 6px; color:#33404f; }
code, pre, .mono { font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:12px; }
pre { background:#f3f4f7; border:1px solid var(--line); border-radius:4px; padding:6px 8px; margin:4px 0;
      white-space:pre-wrap; word-break:break-word; }
table { border-collapse:collapse; }
th, td { padding:3px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { font-weight:600; color:#33404f; background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.banner { padding:8px 12px; border-radius:5px; font-weight:600; margin-bottom:10px; }
.banner.bad { background:#fdecea; color:#8c1d12; border:1px solid #f5c2bd; }
.banner.good { background:#e8f5f1; color:#145c57; border:1px solid #bfe3da; }
#script-error { background:#8c1d12; color:#fff; padding:8px 20px; font-weight:600; }
.summary-grid { display:flex; gap:24px; flex-wrap:wrap; align-items:flex-start; }
.pill { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; font-weight:600; color:#fff; }
.v-pass { background:var(--ok); } .v-fail { background:var(--fail); } .v-skip { background:var(--skip); }
.v-rejected { background:var(--rej); } .v-xfail { background:#9c4a47; outline:1px dashed #9c4a47; outline-offset:1px; }
.v-xpass { background:#7a3fb0; }
.xfail-sw { background:repeating-linear-gradient(135deg,#b0413e 0 3px,#e8b3b1 3px 6px); } .v-error { background:var(--err); } .v-new { background:#3467c5; }
.count0 { color:#b0b6bf; }
#summary-table th { white-space:nowrap; }
.tolerance { color:#33404f; font-size:13px; margin:8px 0 0; }
.envline { color:#33404f; }
.filters { display:flex; gap:10px; flex-wrap:wrap; align-items:center; margin-bottom:8px; }
.filters input[type=search] { width:280px; padding:4px 6px; }
.filters select, .filters input { font:inherit; }
.legend { display:flex; gap:10px; flex-wrap:wrap; align-items:center; font-size:12px; color:var(--mut); }
.sw { display:inline-block; width:14px; height:12px; border-radius:2px; vertical-align:middle; margin-right:3px;
      border:1px solid rgba(0,0,0,.15); }
#matrix { width:100%; font-size:13px; }
/* every row is its own grid: only content-independent track sizes keep the columns aligned */
.mrow { display:grid; grid-template-columns:18px minmax(260px, 1fr) 150px 64px 100px
        repeat(var(--engines, 3), 92px) var(--baseline-col, 0px);
        align-items:stretch; border-bottom:1px solid var(--line); }
.mrow > div { padding:3px 6px; overflow:hidden; }
.mrow.head { font-weight:600; color:#33404f; background:#fafbfc; position:sticky; top:0; z-index:2; }
/* Fixed-height rows that skip layout while off screen: exact placeholders keep #case= jumps and scrolling exact */
.case-row { cursor:pointer; height:40px; content-visibility:auto; contain-intrinsic-size:auto 40px; }
.case-row > div { white-space:nowrap; text-overflow:ellipsis; }
.case-row:hover > div { background-color:#f0f3f7; }
.case-row > .cell { text-align:center; font-size:12px; font-variant-numeric:tabular-nums; border-left:2px solid #fff;
                    display:flex; align-items:center; justify-content:center; }
.case-row > .cell:hover { outline:2px solid #1d2430; outline-offset:-2px; }
.case-row .tog { color:var(--mut); }
.case-row .cid > div { display:-webkit-box; -webkit-line-clamp:2; -webkit-box-orient:vertical; white-space:normal;
                        overflow:hidden; overflow-wrap:anywhere; line-height:1.3; }
.case-row.open > div:not(.cell) { background:#eef2f7; }
.detail { background:#fbfcfd; padding:10px 12px 16px; border-bottom:2px solid #9aa5b4; }
.chg { font-size:12px; font-weight:700; color:#3467c5; }
.case-head { display:flex; gap:12px; align-items:baseline; flex-wrap:wrap; margin-bottom:6px; }
.case-head .title { font-size:15px; font-weight:700; }
.msg { border-left:4px solid var(--skip); background:#f4f5f7; padding:5px 9px; margin:4px 0; }
.msg.fail, .msg.error { border-color:var(--fail); background:#fdf0ee; }
.msg.rejected { border-color:var(--rej); background:#f5f0fb; }
.cols { display:flex; gap:18px; flex-wrap:wrap; align-items:flex-start; }
.cols > div { min-width:260px; }
.cols > div.narrow { max-width:460px; }
.tabs { display:flex; gap:4px; margin:12px 0 0; border-bottom:1px solid var(--line); }
.tabs button { font:inherit; border:1px solid var(--line); border-bottom:none; background:#eef0f3; padding:4px 12px;
               border-radius:5px 5px 0 0; cursor:pointer; }
.tabs button.on { background:#fff; font-weight:700; position:relative; top:1px; }
.pics { border:1px solid var(--line); border-top:none; background:#fff; padding:10px; }
.pattern { font-weight:600; margin:2px 0 8px; }
.maps { display:flex; flex-wrap:wrap; gap:14px 26px; }
.chan { display:flex; gap:12px; align-items:flex-start; }
.chan .label { font-size:12px; color:#33404f; margin-bottom:3px; }
.fig { display:inline-block; }
.cap { font-size:11px; color:var(--mut); text-align:center; }
canvas.map { image-rendering:pixelated; border:1px solid #c3c9d2; display:block; }
.allgrid { display:flex; flex-wrap:wrap; gap:6px; margin-top:6px; }
.allgrid .fig .cap { font-size:10px; }
#tip { position:fixed; pointer-events:none; background:#1d2430; color:#fff; font-size:12px; padding:4px 7px;
       border-radius:4px; z-index:10; display:none; white-space:pre; }
.small { font-size:12px; color:var(--mut); }
.warn { color:#8c1d12; }
#coverage { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 14px; margin-bottom:14px; }
#coverage > summary { cursor:pointer; }
#coverage > summary h2 { display:inline; }
/* equal columns (two on a wide screen), so that the kinds' tables line up */
.cov-grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(600px, 1fr)); gap:4px 28px; align-items:start; }
.cov-kind { min-width:0; }
.cov-table { width:100%; font-size:12px; table-layout:fixed; }
.cov-table th:first-child { width:120px; }
.cov-table tr:first-child th:last-child { width:30%; }
.cov-table td:nth-child(3) { color:#33404f; }
.cov-table tr.has-miss > th { box-shadow:inset 3px 0 0 var(--fail); }
.cov-chip { display:inline-block; padding:0 6px; margin:1px 0; border-radius:9px; background:#e8f5f1; color:#145c57;
            border:1px solid #bfe3da; white-space:nowrap; }
.cov-chip.cov-miss { background:#fdecea; color:#8c1d12; border-color:#f5c2bd; }
.cov-chip b { font-weight:700; }
.cov-chip i { font-style:normal; font-weight:700; display:inline-block; min-width:16px; margin-left:2px; padding:0 4px;
              border-radius:7px; background:#145c57; color:#fff; text-align:center; font-size:11px; }
#cov-missing-only:checked ~ .cov-grid tr:not(.has-miss):not(:first-child) { display:none; }
button.link { background:none; border:none; color:#3467c5; cursor:pointer; padding:0; font:inherit; text-decoration:underline; }
"""
