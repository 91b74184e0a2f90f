"""What a pytest run of the cases spends beyond running them (issue 21): no assertion rewriting of the harness, no
hypothesis import when no test used it, the frameworks' objects frozen out of the cyclic GC after they load."""
import importlib.metadata
import json
import subprocess
import sys

import pytest

from testkit import ROOT

CASE = """\
cases:
  - id: conv
    layer: Conv1D
    input_shape: [2, 7, 3]
    config: {filters: 2, kernel_size: 3, padding: same}
"""

# A pytest run in a fresh process; afterwards, what it left in sys.modules, as JSON on the last line.
PROBE = """\
import gc, json, sys
import pytest
rc = pytest.main(sys.argv[1:])
rewritten = sorted(n for n, m in sys.modules.items() if n.startswith("harness")
                   and type(getattr(m, "__loader__", None)).__name__ == "AssertionRewritingHook")
print(json.dumps({"rc": int(rc), "rewritten": rewritten, "hypothesis": "hypothesis" in sys.modules,
                  "frozen": gc.get_freeze_count()}))
"""


def probe(tmp_path, *args):
    (tmp_path / "one.yaml").write_text(CASE)
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "one.yaml"), "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def installed_entry_point() -> str | None:
    return next((ep.value for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "harness"), None)


def test_the_harness_is_not_assertion_rewritten(tmp_path):
    if installed_entry_point() != "pytest_conv_harness":
        pytest.skip(f"the installed entry point is {installed_entry_point()!r}, from before pyproject.toml changed: "
                    "`make install` (or pip install -e .) installs the current one")
    stray = sorted(p.name for p in ROOT.glob("*.egg-info"))
    if stray:
        # pip install -e . leaves the build's egg-info in the checkout, on sys.path under `python -m pytest`: its
        # SOURCES.txt lists every harness module, which pytest then rewrites. `make install` removes it.
        pytest.skip(f"{', '.join(stray)} in the checkout (an editable build's by-product; `make install` removes "
                    "it): pytest reads its SOURCES.txt and rewrites all of harness/")
    seen, done = probe(tmp_path, "--engine", "oracle")
    assert seen["rc"] == 0, done.stdout + done.stderr
    # Only the plug-in's own modules (pytest marks what a pytest_plugins list names); tests/ is rewritten as before.
    assert set(seen["rewritten"]) <= {"harness.frontends.pytest_plugin", "harness.frontends.shard"}, seen


def test_a_run_of_cases_does_not_import_hypothesis(tmp_path):
    seen, done = probe(tmp_path, "--engine", "oracle")
    assert seen["rc"] == 0 and seen["hypothesis"] is False, done.stdout + done.stderr


def test_the_frameworks_objects_are_frozen_once_loaded(tmp_path):
    pytest.importorskip("torch")
    seen, done = probe(tmp_path, "--engine", "oracle", "--engine", "torch")
    assert seen["rc"] == 0 and seen["frozen"] > 0, done.stdout + done.stderr
