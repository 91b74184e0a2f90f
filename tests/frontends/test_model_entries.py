"""A case file's `models:` entries: validated with the file, the case and the field named; diffed by pytest and `run`
(a broken port fails its item with the culprit's line) and by `report` (tests/report/test_report_models.py); refused
by the commands that do not judge them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTS = ROOT / "tests" / "models"


def _write(tmp_path: Path) -> Path:
    (tmp_path / "port.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(PORTS)!r})\n"
        "import ports\n"
        "def good():\n    return ports.PORTS['mobilenet_v2'].Port()\n"
        "def relu():\n    return ports.PORTS['mobilenet_v2'].Port(bug='relu_not_relu6')\n")
    f = tmp_path / "models.yaml"
    f.write_text(
        "models:\n"
        "  - {id: good, keras: mobilenet_v2, port: port.py:good, input_size: 32, transfer_weights: true}\n"
        "  - {id: relu, keras: mobilenet_v2, port: port.py:relu, input_size: 32, transfer_weights: true}\n"
        "  - {id: missing, keras: mobilenet_v2, port: nowhere.py:good}\n"
        "  - {id: typo, keras: mobilenet_v2, port: port.py:good, input_sise: 32}\n")
    return f


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_validate_names_file_entry_and_field(tmp_path: Path) -> None:
    f = _write(tmp_path)
    done = subprocess.run([sys.executable, "-m", "harness", "validate", str(f)], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 valid models, 2 invalid" in done.stdout
    assert "models.yaml::missing: port: no such file: nowhere.py" in done.stderr
    assert "models.yaml::typo: input_sise: unknown key; did you mean 'input_size'?" in done.stderr


def test_scoreboard_refuses_a_file_of_models_alone(tmp_path: Path) -> None:
    # `report` runs them (tests/report/test_report_models.py); the scoreboard does not judge them
    f = _write(tmp_path)
    done = subprocess.run([sys.executable, "-m", "harness", "scoreboard", str(f), "--engine", "oracle"],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "only `models:` entries" in done.stderr, done.stderr


def test_pytest_diffs_each_entry(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    f = _write(tmp_path)
    done = subprocess.run([sys.executable, "-m", "pytest", str(f), "-p", "no:cacheprovider", "-q", "-p",
                           "no:logging", "--engine", "oracle"], capture_output=True, text=True, env=_env(),
                          cwd=tmp_path, timeout=600)
    out = done.stdout
    assert done.returncode == 1, out[-3000:]
    assert "3 failed, 1 passed" in out, out[-3000:]
    assert "FAIL (culprit) Conv1_relu" in out and "nn.ReLU6()" in out, out[-3000:]
    assert "invalid case: models.yaml::missing: port: no such file" in out, out[-3000:]


def test_a_model_entry_knows_its_line(tmp_path) -> None:
    """The entry's line reaches the ModelEntry (results.json's models records and messages name it)."""
    from harness.cases.suite import load_suite_file

    path = tmp_path / "m.yaml"
    path.write_text("# a comment\nmodels:\n  - id: first\n    keras: mobilenet_v2\n    port: pkg.mod:make\n"
                    "  - id: second\n    keras: mobilenet_v2\n    port: pkg.mod:make\n")
    lines = [m.line for m in load_suite_file(str(path)).models]
    assert lines == [3, 6], f"lines={lines}, but should be [3, 6]"


def test_a_model_entry_takes_an_onnx_file_or_a_converter_as_its_port(tmp_path) -> None:
    """port: FILE.onnx (resolved beside the case file; a missing one is the entry's error naming the field) or
    converter:NAME; torch_layout left to the diff (the graph's own layout for an ONNX port)."""
    from harness.cases.suite import load_suite_file

    (tmp_path / "port.onnx").write_bytes(b"")
    path = tmp_path / "m.yaml"
    path.write_text("models:\n  - id: file\n    keras: mobilenet_v2\n    port: port.onnx\n"
                    "  - id: conv\n    keras: mobilenet_v2\n    port: converter:onnx2torch\n"
                    "  - id: gone\n    keras: mobilenet_v2\n    port: missing.onnx\n")
    suite = load_suite_file(str(path))
    ports = {m.id: (m.port, m.torch_layout) for m in suite.models}
    assert ports == {"file": (str(tmp_path / "port.onnx"), None), "conv": ("converter:onnx2torch", None)}, ports
    assert [(e.case, e.field) for e in suite.model_errors] == [("gone", "port")], suite.model_errors
