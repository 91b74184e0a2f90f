"""The engines that convert the torch port, fed as their users feed them (issue 21): the legacy ONNX exporter's
variants (torch-onnx-legacy, onnx2tf-legacy) and the port as other porters write it (port_activation, port_padding).
The variants' traits and the port variants' arithmetic need no converter venv; the pinned behaviour runs where the
venvs are installed."""
from __future__ import annotations

import numpy as np
import pytest
from testkit import ROOT, close_workers, load_case

from harness import engines
from harness.cases.schema import load_paths
from harness.diagnosis.diagnose import Diagnoser
from harness.engines import port_variants
from harness.engines.worker import engines_dir
from harness.judge.runner import outcome
from harness.judge.runner import run_one as run_bare
from harness.known.registry import REGISTRY

VARIANTS = {"torch-onnx-legacy": "torch-onnx", "onnx2tf-legacy": "onnx2tf"}
PORT_ENGINES = ("torch-onnx", "torch-onnx-legacy", "onnx2tf", "onnx2tf-legacy", "nobuco")


@pytest.fixture(autouse=True)
def stop_workers():
    yield
    close_workers(*PORT_ENGINES)


@pytest.mark.parametrize("name, parent", VARIANTS.items())
def test_legacy_variant_is_its_own_engine_on_the_parents_venv(name, parent):
    cls, base = engines.engine_class(name), engines.engine_class(parent)
    assert cls.name == name and name not in engines.DEFAULT_ENGINES, f"{name}: class name={cls.name!r}"
    assert (cls.exporter, base.exporter) == ("legacy", "dynamo"), f"{name}: exporter={cls.exporter!r}"
    assert cls.isolation == base.isolation, f"{name} runs in {cls.isolation}, but {parent} in {base.isolation}"
    assert cls.inherits == parent, f"{name}.inherits={cls.inherits!r}, but should be {parent!r}"


@pytest.mark.parametrize("name", PORT_ENGINES)
def test_port_engines_take_the_port_options(name):
    assert set(engines.engine_class(name).options) == set(port_variants.OPTIONS), engines.engine_class(name).options


def test_a_port_option_value_no_variant_has_is_refused():
    with pytest.raises(ValueError, match="port_padding must be one of pad, zeropad, same"):
        port_variants.chosen({"port_padding": "reflect"}, {})
    assert port_variants.chosen({}, {"port_activation": "module"}) == {"port_activation": "module",
                                                                        "port_padding": "pad"}


@pytest.mark.parametrize("layer, config, shape", [
    ("Conv1D", {"filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": 2, "activation": "relu6"},
     (2, 3, 9)),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "padding": "same", "activation": "leaky_relu"}, (1, 3, 7, 6)),
    ("DepthwiseConv2D", {"kernel_size": 3, "strides": 2, "padding": "same", "activation": "hard_sigmoid"},
     (1, 2, 8, 7)),
    ("SeparableConv2D", {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "gelu"}, (1, 2, 6, 5)),
])
@pytest.mark.parametrize("activation, padding", [("module", "pad"), ("function", "zeropad"), ("module", "same")])
def test_a_port_variant_computes_the_same_function_and_says_how(layer, config, shape, activation, padding):
    import torch

    from harness import torch_port
    from harness.layers.geometry import geometry

    g = geometry(layer, config, (shape[0], *shape[2:], shape[1]))
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(size=s) for k, s in g.weight_shapes().items()}
    x = torch.from_numpy(rng.normal(size=shape) * 4).float()
    plain = torch_port.from_keras(layer, config, weights, in_channels=shape[1]).eval()
    styled = torch_port.from_keras(layer, config, weights, in_channels=shape[1]).eval()
    notes = port_variants.restyle(styled, shape[2:], port_activation=activation, port_padding=padding)
    with torch.no_grad():
        want, got = plain(x), styled(x)
    assert got.shape == want.shape, \
        f"{layer} {activation}/{padding}: shape={tuple(got.shape)}, but should be {tuple(want.shape)} [{notes}]"
    # The same products summed in the same order: only nn.ConvNd(padding='same') pads inside the conv kernel.
    if padding == "same":
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-6), f"{layer} {activation}/{padding} [{notes}]"
    else:
        assert torch.equal(got, want), f"{layer} {activation}/{padding}: max diff {(got - want).abs().max()}"
    assert len(notes) == 1 and f"port_padding={padding}" in notes[0], notes
    named = [m for m in styled.modules() if type(m).__module__ == "torch.nn.modules.activation"]
    assert bool(named) == (activation == "module"), f"{activation}: activation modules={named} [{notes}]"


def test_the_harness_port_is_unchanged_where_no_variant_is_asked():
    from harness import torch_port

    module = torch_port.from_keras("Conv1D", {"filters": 1, "kernel_size": 3, "padding": "same",
                                              "activation": "relu6"}, {"kernel": np.ones((3, 1, 1)),
                                                                       "bias": np.zeros(1)})
    assert port_variants.restyle(module, (5,)) == [] and not list(module.children()), list(module.children())


@pytest.mark.parametrize("case_id, applies", [
    ("converters-legacy-pad-same-1d", True),            # 'same' at stride 1 through F.pad
    ("converters-legacy-zeropad-2d", True),             # nn.ZeroPad2d exports the same Pad
    ("converters-legacy-conv-padding-same-2d", False),  # padding='same' inside the conv: no Pad
    ("converters-legacy-crop-transpose-2d", True),      # the port's crop by hand
    ("converters-nobuco-relu6-module", False),          # 'valid': nothing to pad
])
def test_the_legacy_pad_bug_touches_exactly_the_ports_that_pad_in_the_graph(case_id, applies):
    (case,) = [c for c in _cases() if c.id == case_id]
    got = REGISTRY["onnx2tf-legacy-pad-on-batch-axis"].applies(case)
    assert got == applies, f"onnx2tf-legacy-pad-on-batch-axis on {case_id}: applies={got}, but should be {applies}"


def test_the_functional_relu6_refusal_touches_only_a_port_that_calls_f_relu6(tmp_path):
    entry = REGISTRY["nobuco-functional-relu6-refused"]
    text = ("cases:\n  - id: r\n    layer: Conv1D\n    input_shape: [1, 5, 2]\n"
            "    config: {filters: 1, kernel_size: 3, activation: relu6}\n")
    assert not entry.applies(load_case(tmp_path, text)), "nobuco's port applies nn.ReLU6 unless told otherwise"
    told = text + "    engine_options: {nobuco: {port_activation: function}}\n"
    assert entry.applies(load_case(tmp_path, told, "told.yaml"))


def _cases() -> list:
    cases, errors = load_paths([ROOT / "cases" / "torch_port_converters.yaml"])
    assert not errors, errors
    return cases


# ---------------------------------------------------------------- where installed: the pinned behaviour
def _require(name: str) -> None:
    venv = engines.engine_class(name).isolation.venv
    if not (engines_dir() / venv / "bin" / "python").exists():
        pytest.skip(f"engine {name} needs its venv {engines_dir() / venv}: run `make engine-{venv}`")


@pytest.mark.parametrize("name", PORT_ENGINES)
def test_the_pinned_cases_hold_in_each_port_engine(name):
    _require(name)
    for case in _cases():
        r = run_bare(case, name, "forward", Diagnoser())
        got = outcome(r.verdict, r.xfail)   # a pinned refusal is a pass ("rejected, as the case expects")
        want = "xfail" if name in case.xfail else "pass"
        assert got == want, f"{name} on {case.id}: outcome={got}, but should be {want} [{r.message}]"


# ---------------------------------------------------------------- conversion work done once
_MEMO = """\
import hashlib, io, contextlib, sys, warnings
import numpy as np, torch
from torch.onnx._internal.exporter import _registration
from harness import torch_port
from harness.engines.keras_graph import export_torch_onnx, memoise_onnx_registry
warnings.simplefilter("ignore")
w = {"kernel": np.random.default_rng(0).normal(size=(3, 3, 4)), "bias": np.ones(4)}
m = torch_port.from_keras("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "same"}, w).eval()
def digest(path):
    export_torch_onnx(torch, m, torch.ones(2, 3, 9), path, "Conv1D")
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
first = digest(sys.argv[1] + "/a.onnx")   # memoised from its first call on: the registry it builds is kept
again = digest(sys.argv[1] + "/b.onnx")
print(memoise_onnx_registry(), first == again,
      _registration.ONNXRegistry.from_torchlib() is _registration.ONNXRegistry().from_torchlib())
"""


def test_the_onnx_registry_is_built_once_and_the_export_is_unchanged(tmp_path):
    import subprocess

    _require("torch-onnx")
    python = engines_dir() / engines.engine_class("torch-onnx").isolation.venv / "bin" / "python"
    done = subprocess.run([str(python), "-c", _MEMO, str(tmp_path)], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["True", "True", "True"], \
        f"memoised, same bytes, one registry={done.stdout.split()[-3:]}, but should all be True"


def test_a_keras_export_is_keyed_by_everything_that_decides_it(tmp_path):
    from harness.engines.export_cache import key
    from harness.judge.runner import make_inputs, request

    text = ("cases:\n  - id: k\n    layer: Conv2D\n    input_shape: [1, 4, 4, 2]\n"
            "    config: {filters: 2, kernel_size: 3}\n")
    case = load_case(tmp_path, text)
    a, b = request(case, "openvino", make_inputs(case)), request(case, "openvino-f32", make_inputs(case))
    assert key(a, "openvino") == key(b, "openvino"), "openvino and openvino-f32 export the same IR for one item"
    assert key(a, "openvino") != key(a, "onnx"), "another format is another export"
    b.inputs.weights["kernel"] = b.inputs.weights["kernel"].copy()
    b.inputs.weights["kernel"].flat[0] += 1
    assert key(a, "onnx") != key(b, "onnx"), "another weight is another export"
    other = load_case(tmp_path, text.replace("kernel_size: 3", "kernel_size: 3, padding: same"), "o.yaml")
    assert key(a, "onnx") != key(request(other, "keras-onnx", make_inputs(other)), "onnx"), "another configuration"


def test_exports_unused_for_an_hour_are_pruned_and_others_kept(tmp_path, monkeypatch):
    import os
    import time

    from harness.engines import export_cache

    old, young = tmp_path / "old", tmp_path / "young"
    for folder in (old, young):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x")
    os.utime(old, (time.time() - 2 * export_cache.MAX_AGE_S,) * 2)
    monkeypatch.setattr(export_cache, "_made", [export_cache.PRUNE_EVERY])   # the next export prunes
    export_cache._prune(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["young"], list(tmp_path.iterdir())


FALLBACK = """
import os, sys, tempfile
tempfile.tempdir = sys.argv[1]
os.getuid = lambda: 4242   # the shared folder's name says uid 4242; this process made it as another uid
from harness.engines import export_cache
first, second = export_cache._root(), export_cache._root()
print(first, second)
"""


def test_a_shared_folder_of_another_user_is_not_used_and_the_own_one_goes_at_exit(tmp_path):
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FALLBACK, str(tmp_path)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.split()
    assert first == second, "the fallback folder is made once per process, not once per export"
    assert os.path.basename(first).startswith("harness-keras-exports-") and first != str(tmp_path /
                                                                                     "harness-keras-exports-4242")
    assert (tmp_path / "harness-keras-exports-4242").is_dir() and not os.path.exists(first), \
        sorted(p.name for p in tmp_path.iterdir())
