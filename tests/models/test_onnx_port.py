"""`python -m harness diff MODEL PORT` with an ONNX PORT: a file run by onnxruntime (its nodes presented as the torch.nn
modules they are equivalent to) and the converters the harness has (converter:tf2onnx, converter:onnx2torch). The
files are written and diffed (the CLI's main, one process: tests/models/onnx_files.py) in a Python with
onnxruntime, tf2onnx and onnx2torch: this one where it has them, else the engines' onnx venv (`make engine-onnx`);
without either the tests skip and say so. The usage errors (onnxruntime missing: simulated) run here, in any
Python."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.engines.worker import engines_dir
from harness.frontends import cli

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# file -> (the Keras layer that must be the culprit, the cause as (kind, id) of its issues)
BROKEN = {
    "pads_symmetric.onnx": ("conv", ("config", "padding")),
    "kernel_transposed.onnx": ("dw", ("weights", "kernel_transposed")),
    "bn_eps.onnx": ("dw_bn", ("config", "bn_eps")),
    "relu_not_relu6.onnx": ("relu", ("config", "activation")),
}


def _onnx_python() -> str:
    """A Python that has onnxruntime, onnx, tf2onnx and onnx2torch: this one, or the engines' onnx venv."""
    if all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx", "tf2onnx", "onnx2torch")):
        return sys.executable
    python = engines_dir() / "onnx" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"onnxruntime is not importable here and the onnx venv {python.parent.parent} is missing: run "
                    "`make engine-onnx`")
    return str(python)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model, its ONNX export and the broken files, each diffed (tests/models/onnx_files.py), once."""
    python = _onnx_python()
    out = tmp_path_factory.mktemp("onnx")
    done = subprocess.run([python, str(HERE / "onnx_files.py"), str(out)], env=_env(), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out


def _diff(files: Path, run: str) -> tuple[int, str, dict[str, Any]]:
    """A run's exit code, its terminal output and its verdicts (--json)."""
    ran = json.loads((files / "runs.json").read_text())[run]
    return ran["rc"], ran["stdout"], json.loads((files / f"{run}.json").read_text())


def _mapped(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in result["layers"] if d["modules"]]


def test_exported_file_passes_every_mapped_node(files: Path) -> None:
    rc, stdout, result = _diff(files, "small")
    assert rc == 0 and result["passed"], stdout[-3000:]
    assert "fed the graph's input channels_last" in stdout, stdout[:2000]
    mapped = {d["name"]: d for d in _mapped(result)}
    # tf2onnx folds bn into the conv before it: one unit; the depthwise BN (Mul, Add) is judged on the file's tensors.
    assert set(mapped) == {"conv", "relu", "dw", "dw_relu", "gap", "dense"}, sorted(mapped)
    assert mapped["conv"]["kind"] == "Conv2D+BatchNormalization" and "folded" in mapped["conv"]["note"]
    assert all(d["isolated"] is not None and d["isolated"] <= 1.0 for d in mapped.values()), mapped
    functional = next(d for d in result["layers"] if d["name"] == "dw_bn")
    assert functional["verdict"] == "pass" and functional["isolated"] is not None, functional
    reasons = {m["kind"]: m["reason"] for m in result["torch_unmapped"]}
    assert "layout change" in reasons["onnx Transpose"] and "functional point" in reasons["onnx Add"], reasons


def test_graph_input_no_node_reads_is_left_out_with_a_line(files: Path) -> None:
    rc, stdout, result = _diff(files, "unread_input")
    assert rc == 0 and result["passed"], stdout[-3000:]
    assert "the graph's inputs unread are read by no node: left out (not fed)" in stdout.splitlines(), stdout[:2000]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_is_named_at_its_layer_and_the_fix_passes(files: Path, name: str) -> None:
    layer, cause = BROKEN[name]
    rc, stdout, result = _diff(files, name.removesuffix(".onnx"))
    assert rc == 1 and result["culprit"] == layer, (result["culprit"], stdout[-3000:])
    culprit = next(d for d in result["layers"] if d["name"] == layer)
    issues = [(i["kind"], i["id"]) for i in culprit["issues"]]
    assert cause in issues, f"issues={issues}, but should hold {cause} [{name}]"
    assert culprit["isolated"] > 1.0, culprit
    assert culprit["fix"] and culprit["fixed"] is not None and culprit["fixed"] <= 1.0, culprit
    assert [d["name"] for d in result["layers"] if d["verdict"] == "fail"] == [layer], stdout[-3000:]
    assert any(line.startswith(f"FAIL (culprit) {layer} ") and "with it the layer passes" in line
               for line in stdout.splitlines()), stdout[-3000:]


@pytest.mark.parametrize("converter", ["tf2onnx", "onnx2torch"])
def test_converter_port_passes(files: Path, converter: str) -> None:
    rc, stdout, result = _diff(files, converter)
    assert rc == 0 and result["passed"], stdout[-3000:]
    mapped = _mapped(result)
    assert len(mapped) >= 5 and all(d["isolated"] is not None and d["isolated"] <= 1.0 for d in mapped), mapped
    if converter == "tf2onnx":   # --save-onnx: the harness's export, which diffs as the file does
        assert (files / "saved_tf2onnx.onnx").stat().st_size > 0 and "saved the exported ONNX file" in stdout


@pytest.mark.parametrize("port", ["model.onnx", "converter:onnx2torch"])
def test_missing_onnxruntime_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], port: str) -> None:
    """Without onnxruntime (simulated: its import fails) an ONNX PORT is one line saying how to run it, exit 2,
    before any model loads."""
    (tmp_path / "model.onnx").write_bytes(b"not read")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert cli.main(["diff", "no_such_model.keras", port]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make engine-onnx" in err[0] and ".engines/onnx/bin/python -m harness diff" in err[0], err


def test_torch_weights_with_an_onnx_port_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diff", "no_such_model.keras", "converter:tf2onnx", "--transfer-weights"]) == 2
    assert cli.main(["diff", "no_such_model.keras", "converter:nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "holds its own weights" in err[0] and "unknown converter 'nothing'" in err[1], err


def test_onnxruntime_sigmoid_off_for_large_negative_inputs_is_named_numerics(files: Path) -> None:
    """A finding, pinned: onnxruntime's CPU Sigmoid (1.32) is accurate to about 2^-24 absolute, not relative: at
    x < -10 its outputs are off by more than 1e-3 of themselves (sigmoid(-17.95) gives 8.9e-8 for 1.6e-8), beyond
    any bound on a correctly computed sigmoid. The diff names the layer, with Keras's own output within the bound
    (the oracle is not the one off), and onnx2torch's module of the same file (torch's sigmoid) passes."""
    rc, stdout, result = _diff(files, "sigmoid")
    assert rc == 1 and result["culprit"] == "sig", stdout[-3000:]
    sig = next(d for d in result["layers"] if d["name"] == "sig")
    assert sig["cause"].startswith("numerics:") and sig["isolated"] > 10.0 and sig["keras"] <= 1.0, sig
    # onnxruntime is no engine of the registry by itself: the cause says it was not looked up (never a wrong name)
    assert "not looked up" in sig["cause"] and not [i for i in sig["issues"] if i["kind"] == "known_bug"], sig
    rc, stdout, result = _diff(files, "sigmoid_onnx2torch")
    assert rc == 0 and result["passed"], stdout[-3000:]


@pytest.mark.parametrize("multiplies", [True, False])
def test_sigmoid_times_its_input_is_judged_as_silu(multiplies: bool) -> None:
    """onnx2torch's module of tf2onnx's swish: a Sigmoid module, the multiply by its input in the forward. Judged as
    that composition (the conv's fused swish, a swish layer) where a later module reads the product, it passes; a
    port that leaves the multiply out fails at the first swish, named as the activation it computes."""
    import keras
    import numpy as np
    import torch

    from harness import api

    inp = keras.Input((6, 6, 3))
    y = keras.layers.Conv2D(4, 3, activation="swish", name="conv")(inp)
    y = keras.layers.Activation("swish", name="act")(y)
    model = keras.Model(inp, keras.layers.Conv2D(2, 1, name="head")(y))

    def conv(name: str, c_in: int, c_out: int, k: int) -> torch.nn.Conv2d:
        module = torch.nn.Conv2d(c_in, c_out, k)
        kernel, bias = model.get_layer(name).get_weights()
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            module.bias.copy_(torch.from_numpy(bias))
        return module

    class Port(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = conv("conv", 3, 4, 3), conv("head", 4, 2, 1)
            self.sig1, self.sig2 = torch.nn.Sigmoid(), torch.nn.Sigmoid()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            y = y * self.sig1(y) if multiplies else self.sig1(y)
            y = y * self.sig2(y) if multiplies else self.sig2(y)
            return self.head(y)

    x = np.random.default_rng(0).standard_normal((1, 6, 6, 3)).astype(np.float32)
    result = api.diff(model, Port().eval(), x)
    if multiplies:
        assert result.passed, [(d.name, d.cause) for d in result.failed]
        assert {d.name: d.modules for d in result.layers} == {"conv": ["conv", "sig1"], "act": ["sig2"],
                                                              "head": ["head"]}
    else:
        issues = [(i.kind, i.id) for i in result.failed[0].issues]
        assert result.culprit == "conv" and ("config", "activation") in issues, (result.culprit, issues)
