"""Fast collection: case files are parsed by libyaml's C parser where PyYAML has it, with SafeLoader's constructor (no
tag constructs a Python object) and the same line of every mapping; a file the C parser refuses is parsed again by
the pure-Python loader, so that every error reads as it always did (file, line, source excerpt)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from harness.cases import schema
from harness.cases.schema import load_file
from testkit import ROOT, write_yaml

SHIPPED = sorted((ROOT / "cases").glob("*.yaml"))
FAST = yaml.__with_libyaml__

needs_libyaml = pytest.mark.skipif(not FAST, reason="PyYAML without libyaml: the pure-Python loader is the only one")


def _pure(monkeypatch) -> None:
    """load_file as it was: the pure-Python line-tracking loader alone."""
    monkeypatch.setattr(schema, "_LOADERS", (schema._LineLoader,))


def _loaded(path: Path, name: str | None = None) -> tuple[list[str], list[str]]:
    cases, errors = load_file(path, name=name)
    return [repr(c) + repr(c.source) + repr(c.line) + repr(c.impossible) for c in cases], [str(e) for e in errors]


@needs_libyaml
def test_the_c_parser_comes_first_and_stays_safe():
    fast = schema._LOADERS[0]
    assert issubclass(fast, yaml.CSafeLoader), f"first loader {fast.__name__}, but should be libyaml's CSafeLoader"
    assert schema._LOADERS[-1] is schema._LineLoader, "the pure-Python loader must explain every error"
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load('x: !!python/object/apply:os.system ["true"]', Loader=fast)  # noqa: S506 - the point of the test


@needs_libyaml
@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_both_loaders_read_a_shipped_file_alike(path):
    """The same document, values and types and the line of every mapping (``__line__``)."""
    fast, pure = schema._parse(path, schema._LOADERS[0]), schema._parse(path, schema._LineLoader)
    assert fast == pure, f"{path.name}: the C parser reads it otherwise than the pure-Python loader"
    assert repr(fast) == repr(pure), f"{path.name}: same values, other types or key order"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_cases_are_the_same_with_the_pure_loader(path, monkeypatch):
    fast = _loaded(path, name=f"cases/{path.name}")
    _pure(monkeypatch)
    assert _loaded(path, name=f"cases/{path.name}") == fast


@needs_libyaml
def test_a_good_file_is_parsed_once(tmp_path, monkeypatch):
    used = []
    real = schema._parse
    monkeypatch.setattr(schema, "_parse", lambda source, loader: used.append(loader) or real(source, loader))
    cases, errors = load_file(SHIPPED[0])
    assert cases and not errors
    assert used == [schema._LOADERS[0]], f"parsed by {[u.__name__ for u in used]}, but should be the C parser once"


BROKEN = {
    "unclosed": """\
        cases:
          - id: a
            layer: Conv1D
            input_shape: [1, 5, 2
            config: {filters: 3, kernel_size: 3}
        """,
    "indentation": """\
        cases:
          - id: a
            layer: Conv1D
           input_shape: [1, 5, 2]
        """,
    "tab": "cases:\n\t- id: a\n",
    "python-tag": """\
        cases:
          - id: a
            layer: !!python/object/apply:os.system ["true"]
        """,
    "undefined-alias": "cases: *nowhere\n",
    "unicode-line-breaks": "cases: [\u00e9, \x85 \u2028 x]\n",   # valid YAML; invalid cases
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_an_error_reads_as_before(tmp_path, monkeypatch, name):
    """The message of a file that cannot be read (or is refused) is the pure-Python loader's, word for word: file,
    line and column, the source excerpt (libyaml words most of these otherwise)."""
    path = write_yaml(tmp_path, textwrap.dedent(BROKEN[name]), "cases.yaml")
    fast = _loaded(path, name="shown/as.yaml")
    _pure(monkeypatch)
    pure = _loaded(path, name="shown/as.yaml")
    assert fast == pure, f"{name}: {fast} != {pure}"


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    path = write_yaml(tmp_path, textwrap.dedent(BROKEN["unclosed"]), "cases.yaml")
    _, errors = load_file(path, name="shown/as.yaml")
    assert len(errors) == 1
    text = str(errors[0])
    assert text.startswith("shown/as.yaml: cannot read YAML: "), text
    assert f'in "{path}", line 4' in text, f"{text!r} should name the line of the unclosed list"
