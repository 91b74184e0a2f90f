"""The report page's package data: read through importlib.resources, shipped with the package, inlined in the page."""
from __future__ import annotations

import re
import shutil
from importlib.resources import files
from typing import Any

import pytest

from harness.report import assets
from harness.report import html as report_html
from testkit import ROOT

STATIC = ("report.css", "guard.js", *assets.SCRIPT_PARTS)
EVIL = "tricky \"'</script><!--<b>&amp;"


def small_doc() -> dict[str, Any]:
    """The fewest fields render() reads: one case, one engine (built by hand, so no engine has to run)."""
    counts = {"pass": 1, "fail": 0, "xfail": 0, "xpass": 0, "skip": 0, "rejected": 0, "error": 0, "total": 1,
              "max_ratio_pass": 0.25}
    case = {"id": "c1", "file": "cases.yaml", "line": 3, "layer": "Conv2D", "dtype": "float32", "seed": 0,
            "input_shape": [1, 4, 4, 1], "swept": None, "description": EVIL, "source": {"id": "c1"}, "config": {}}
    result = {"case_id": "c1", "engine": "oracle", "verdict": "pass", "message": EVIL, "metrics": {"max_ratio": 0.25}}
    return {"schema_version": "1.2", "created": "2026-01-01T00:00:00+00:00", "command": ["harness", "report", EVIL],
            "paths": ["cases.yaml"], "duration_s": 0.5, "engines": ["oracle"], "summary": {"oracle": counts},
            "environment": {"python": "3.11", "numpy": "2.0", "cpu": "x86_64", "cpu_count": 1},
            "tolerance": {"model": EVIL}, "cases": [case], "results": [result], "coverage": None}


@pytest.fixture
def fresh_assets():
    """Empty the loaders' caches around a test, so that it reads the files anew and leaves no stale copy behind."""
    assets.static_text.cache_clear()
    assets.environment.cache_clear()
    yield
    assets.static_text.cache_clear()
    assets.environment.cache_clear()


def test_static_files_are_package_resources_and_inlined():
    page = report_html.render(small_doc(), {})
    for name in STATIC:
        text = (files("harness.report") / "static" / name).read_text(encoding="utf-8")
        assert text.strip(), f"static/{name} is empty"
        assert assets.static_text(name) == text, f"static/{name} was not read from the package's resources"
        assert text in page, f"static/{name} is not inlined in the page"


def test_assets_are_read_through_importlib_resources(monkeypatch, tmp_path, fresh_assets):
    # A copy of the package data with a marker in each file: the page must come from wherever files() points,
    # not from a path next to the module or under the working directory.
    package = tmp_path / "report_data"
    for folder in ("static", "templates"):
        shutil.copytree(files("harness.report") / folder, package / folder)
    for name in STATIC:
        path = package / "static" / name
        path.write_text(path.read_text(encoding="utf-8") + f"/* marker {name} */\n", encoding="utf-8")
    template = package / "templates" / "report.html.j2"
    template.write_text(template.read_text(encoding="utf-8") + "<!-- template marker -->\n", encoding="utf-8")
    seen = []
    monkeypatch.setattr(assets, "files", lambda anchor: seen.append(anchor) or package)
    page = report_html.render(small_doc(), {})
    assert set(seen) == {"harness.report"}, f"files() was asked for {set(seen)}, but should be for harness.report"
    for name in STATIC:
        assert f"/* marker {name} */" in page, f"static/{name} was not read through importlib.resources"
    assert page.endswith("<!-- template marker -->\n"), "the template was not read through importlib.resources"


def test_page_is_one_file_and_data_cannot_close_its_script():
    page = report_html.render(small_doc(), {})
    assert not re.search(r"<script[^>]*\ssrc\s*=", page), "a <script src=...> loads code from outside the page"
    assert not re.search(r"<link[^>]*\shref\s*=", page), "a <link href=...> loads a resource from outside the page"
    assert "@import" not in page, "the stylesheet imports an outside resource"
    # The guard, the data, one case's data, the script; each closes once: no text field (all EVIL) ends one early.
    assert page.count("<script") == page.count("</script>") == 4, "a <script> element was split or left open"
    assert EVIL not in page and "<!--<b>" not in page, "a text field reached the page unescaped"
    assert "&quot;&#x27;&lt;/script&gt;" in page, "text should be escaped as html.escape() does, quotes included"


def test_package_data_is_declared_for_every_asset():
    # `static/*` and `templates/*` do not descend into folders: every asset must sit directly in one of them.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = declared["tool"]["setuptools"]["package-data"]["harness.report"]
    assert set(globs) >= {"static/*", "templates/*"}, f"package-data for harness.report={globs}"
    for folder in ("static", "templates"):
        for item in (files("harness.report") / folder).iterdir():
            assert item.is_file(), f"{folder}/{item.name} is a folder, which `{folder}/*` does not ship"
