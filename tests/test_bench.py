"""`make bench` (tools/bench.py) in its --quick smoke mode: every figure is measured, stated against its goal and
printed with the command it came from. The figures themselves are not asserted: timing is no test on a shared
machine (the bench prints them; the README states the latest)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_measures_every_figure_with_its_goal_and_command(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit={done.returncode}\n{done.stdout}\n{done.stderr}"
    figures = json.loads(out.read_text())["figures"]
    assert sorted({f["key"] for f in figures}) == ["a", "a2", "b", "d", "e"], [f["key"] for f in figures]
    assert [f["extra"]["name"] for f in figures if f["key"] == "b"] == \
        ["depthwise-small", "separable-small", "conv2d-small"]
    for f in figures:
        assert f["value"] is not None and f["value"] > 0, f"({f['key']}) measured nothing: {f['text']}"
        assert f["goal"][0] in "<>" and f["met"] in (True, False), f
        assert f["commands"], f"({f['key']}) names no command"
        assert f"({f['key']}) {f['title']}" in done.stdout and f"[goal {f['goal']}" in done.stdout
    a = next(f for f in figures if f["key"] == "a")
    bare = a["extra"]["bare_result"]
    assert bare["cases"] == a["extra"]["cases"] > 0 and bare["torch_errors"] == 0, bare
    a2 = next(f for f in figures if f["key"] == "a2")
    assert a2["extra"]["pytest_s"] > 0 and a2["extra"]["bare_s"] == a["extra"]["bare_s"], a2["text"]
    d = next(f for f in figures if f["key"] == "d")
    assert d["extra"]["frameworks"] == "" and d["extra"]["items"] > 0, d["text"]
    assert "(c), (f) skipped" in done.stdout
