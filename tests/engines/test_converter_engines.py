"""The built-in converter engines (Keras on jax / torch, tf2onnx -> onnxruntime, torch.onnx -> onnxruntime,
onnx2torch, OpenVINO, LiteRT, nobuco, onnx2tf): optional extras, each in its own venv (`make engine-NAME`). Their traits are checked
everywhere; where a venv is installed, a few small cases run through the engine's worker and agree with the
oracle within the harness's bound; where it is not, the test skips and says which `make` target installs it."""
from __future__ import annotations

import re

import pytest

from harness import engines
from harness.known import facts
from harness.engines.worker import ENGINES_DIR_VARIABLE, engines_dir
from harness.diagnosis.diagnose import Diagnoser
from harness.judge.runner import outcome
from harness.judge.runner import run_one as run_bare
from harness.cases.schema import load_paths
from testkit import ROOT, close_workers, load_cases


def run_one(case, engine):
    """An item as the CLI and pytest run it: with the diagnoser, so that failures carry their findings."""
    return run_bare(case, engine, "forward", Diagnoser())

CONVERTERS = ("keras-jax", "keras-torch", "keras-onnx", "torch-onnx", "torch-onnx-legacy", "onnx2torch", "openvino",
              "openvino-f32", "litert", "nobuco", "onnx2tf")
# Built from the Keras layer (its graph, or the layer itself on another backend): Keras's known behaviour applies.
HEIRS = ("keras-jax", "keras-torch", "keras-onnx", "onnx2torch", "openvino", "openvino-f32", "litert")

# Small, quick, and untouched by any known bug: channels_last and channels_first, each family, a bias and an
# activation; the channels_first output's last axis (4) is not as long as its channel count (6), so Keras's bias
# bug does not reach it. (A 1-D channels_first layer would trip the TFLite converter: litert errs on those.)
SMALL = """\
cases:
  - id: conv2d-same-stride2
    layer: Conv2D
    input_shape: [1, 7, 6, 3]
    config: {filters: 4, kernel_size: 3, strides: 2, padding: same, activation: relu}
  - id: depthwise2d-cf
    layer: DepthwiseConv2D
    input_shape: [2, 3, 5, 6]
    config: {kernel_size: 3, depth_multiplier: 2, data_format: channels_first}
  - id: separable2d-dilated
    layer: SeparableConv2D
    input_shape: [1, 8, 7, 2]
    config: {filters: 3, kernel_size: 2, dilation_rate: 2, depth_multiplier: 2, padding: same}
"""
# rgb-ones (worked_examples.yaml): 1*4 + 100*4 + 10000*4 = 40404 exactly in float32; bfloat16 inputs and products
# accumulate to 40448, so an engine computing float32 in bfloat16 shows at a glance.
RGB_ONES = """\
cases:
  - id: rgb-ones
    layer: Conv2D
    input_shape: [1, 3, 3, 3]
    config: {filters: 1, kernel_size: 2, padding: valid}
    input: {init: channels, values: [1, 100, 10000]}
    weights: {kernel: ones, bias: zeros}
"""


def _installed(name: str) -> str:
    """'' where engine ``name`` can run here, else why not (the reason its items skip)."""
    isolation = engines.engine_class(name).isolation
    if isolation is None or isolation.venv is None:
        return ""
    python = engines_dir() / isolation.venv / "bin" / "python"
    if not python.exists():
        return f"engine {name} needs its venv {python.parent.parent}: run `make engine-{isolation.venv}`"
    return ""


def _require(name: str) -> None:
    missing = _installed(name)
    if missing:
        pytest.skip(missing)


@pytest.fixture(autouse=True)
def stop_workers():
    """Each test's workers are stopped after it: a converter's worker holds a framework (about 1 GB), and a dozen
    of them alive at once would crowd a small machine."""
    yield
    close_workers(*CONVERTERS)


# ---------------------------------------------------------------- traits: no framework, no venv needed
@pytest.mark.parametrize("name", CONVERTERS)
def test_converter_is_builtin_isolated_and_not_a_default(name):
    cls = engines.engine_class(name)
    assert cls.name == name, f"class {cls.__name__} names itself {cls.name!r}, but is registered as {name!r}"
    assert name not in engines.DEFAULT_ENGINES, f"{name} is a default engine, but make test must not need it"
    assert cls.isolation is not None, f"{name} must run in a worker (its own env or venv)"
    assert (cls.inherits == "keras") == (name in HEIRS), f"{name}.inherits={cls.inherits!r}"
    if cls.isolation.venv:
        req = ROOT / "engines" / f"{cls.isolation.venv}.txt"
        assert req.is_file(), f"{name} runs in venv {cls.isolation.venv!r}, but {req} is missing"


@pytest.mark.parametrize("venv", sorted(p.stem for p in (ROOT / "engines").glob("*.txt")))
def test_requirements_pin_every_direct_dependency_and_the_cpu_torch(venv):
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "engines" / f"{venv}.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    unpinned = [ln for ln in lines if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^\s]*", ln)]
    assert not unpinned, f"engines/{venv}.txt: not pinned with ==: {unpinned}"
    torch = [ln for ln in lines if ln.lower().startswith("torch==")]
    assert torch in ([], ["torch==2.13.0"]), \
        f"engines/{venv}.txt pins {torch}; torch must be torch==2.13.0 (the CPU wheel), never another or unpinned"


def test_runtime_limit_skips_before_any_worker_starts(tmp_path):
    # onnxruntime has no float64 Conv kernel on CPU: a declared limit, a skip with the reason, venv or not.
    (case,) = load_cases(tmp_path, SMALL.replace("cases:\n", "defaults: {dtype: float64}\ncases:\n", 1))[:1]
    for name in ("keras-onnx", "torch-onnx"):
        r = run_one(case, name)
        assert r.verdict == "skip" and "float64" in r.message and "Conv" in r.message, \
            f"{name} float64: verdict={r.verdict}, but should skip with onnxruntime's limit [{r.message}]"
        worker = engines._loaded.get(name)
        assert worker is None or worker.pid is None, f"a {name} worker started for an item its runtime cannot run"


def test_missing_venv_skips_with_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv(ENGINES_DIR_VARIABLE, str(tmp_path / "no-engines"))
    monkeypatch.delitem(engines._loaded, "keras-jax", raising=False)
    (case,) = load_cases(tmp_path, SMALL)[:1]
    r = run_one(case, "keras-jax")
    engines._loaded.pop("keras-jax", None)
    assert r.verdict == "skip" and "make engine-keras-jax" in r.message, \
        f"verdict={r.verdict}, but should skip naming `make engine-keras-jax` [{r.message}]"


# ---------------------------------------------------------------- where installed: agreement with the oracle
@pytest.mark.parametrize("name", CONVERTERS)
def test_small_cases_agree_with_the_oracle(tmp_path, name):
    _require(name)
    # openvino computes float32 in bfloat16 on CPUs with AVX512_BF16/AMX: asked for f32 here (the option), its
    # default is checked below.
    text = SMALL if name != "openvino" else SMALL.replace("cases:\n", "defaults: {engine_options: {openvino: "
                                                                      "{precision: f32}}}\ncases:\n", 1)
    for case in load_cases(tmp_path, text):
        r = run_one(case, name)
        assert r.verdict == "pass", f"{name} on {case.id}: verdict={r.verdict}, but should pass [{r.message}]"
        assert r.facts.get("keras_backend") in (None, "tensorflow", "jax", "torch")


@pytest.mark.parametrize("name", ["keras-onnx", "onnx2torch", "keras-jax"])
def test_heir_carries_or_escapes_keras_bias_bug_as_its_backend_says(tmp_path, name):
    # The channels_first depthwise of worked_examples.yaml: Keras (TensorFlow backend) adds the bias along the last
    # axis. Through tf2onnx the bug is carried (an expected failure, inherited); on jax there is no such bug.
    _require(name)
    (case,) = load_cases(tmp_path, """\
cases:
  - id: cf-bias
    layer: DepthwiseConv2D
    input_shape: [1, 4, 3, 4]
    config: {kernel_size: [1, 1], data_format: channels_first}
    input: ones
    weights: {kernel: ones, bias: {init: arange, start: 1}}
    xfail: {keras: keras-bias-add-guessed-nhwc}
""")
    r = run_one(case, name)
    want = "pass" if name == "keras-jax" else "xfail"
    assert outcome(r.verdict, r.xfail) == want, \
        f"{name}: outcome={outcome(r.verdict, r.xfail)}, but should be {want} [{r.message}]"


def test_openvino_default_precision_is_bfloat16_where_the_cpu_has_it(tmp_path):
    _require("openvino")
    (case,) = load_cases(tmp_path, RGB_ONES)
    default, f32 = run_one(case, "openvino"), run_one(case, "openvino-f32")
    assert f32.verdict == "pass", f"openvino-f32: verdict={f32.verdict}, but should pass [{f32.message}]"
    assert any("inference precision: f32" in n for n in f32.notes), f32.notes
    if {"avx512_bf16", "amx_bf16"} & set(facts.cpu_flags()):
        assert default.verdict == "fail" and "40448" in default.message and "bfloat16" in default.message, \
            f"openvino (default) on a CPU with bf16: should compute 40448 and be diagnosed bfloat16 [{default.message}]"
    else:
        assert default.verdict == "pass", f"openvino (default) without bf16: [{default.message}]"


@pytest.mark.parametrize("name, dtype", [("keras-onnx", "float16"), ("nobuco", "float16")])
def test_output_dtype_is_the_converters_not_cast_back(tmp_path, name, dtype):
    # An engine returns the output as the converted model gives it: keras-onnx keeps float16; nobuco builds its
    # Keras 2 layers in float32 whatever the port's dtype, which the dtype check must catch (and say so).
    _require(name)
    (case,) = load_cases(tmp_path, SMALL.replace("cases:\n", f"defaults: {{dtype: {dtype}}}\ncases:\n", 1))[:1]
    r = run_one(case, name)
    if name == "nobuco":
        assert r.verdict == "fail" and r.dtype == "float32" and "dtype" in r.message, \
            f"nobuco in {dtype}: dtype={r.dtype}, verdict={r.verdict}, but should fail the dtype check [{r.message}]"
    else:
        assert r.dtype == dtype and r.verdict == "pass", f"dtype={r.dtype}, verdict={r.verdict} [{r.message}]"


def test_versions_are_recorded_from_the_engine_venv():
    _require("keras-onnx")
    env = engines.get("keras-onnx").worker_environment()
    info = env.get("keras-onnx", {})
    assert info.get("tf2onnx") and info.get("onnxruntime"), f"keras-onnx environment={env}"


# ---------------------------------------------------------------- transposed convs: the runtime's own checks refuse
@pytest.mark.parametrize("name, case_id, known", [
    # onnxruntime's shape inference refuses tf2onnx's negative ConvTranspose pads at load.
    ("keras-onnx", "converters-ct-output-padding-two-past", "tf2onnx-conv-transpose-negative-pads-refused"),
    # torch refuses the padding=-1 onnx2torch builds from them, at call.
    ("onnx2torch", "converters-ct-output-padding-two-past", "onnx2torch-conv-transpose-negative-pads-refused"),
    # LiteRT's TRANSPOSE_CONV refuses at prepare what TensorFlow refuses at call: Keras's refusal, inherited.
    ("litert", "conv2d-transpose-same-even-kernel-no-output-padding-rejected",
     "tf-conv-transpose-same-output-size-refused"),
])
def test_a_runtime_check_that_refuses_a_transposed_conv_is_its_pinned_refusal(name, case_id, known):
    _require(name)
    cases, errors = load_paths([ROOT / "cases" / f for f in ("conv_transpose_converters.yaml",
                                                             "conv_transpose.yaml")])
    assert not errors, errors
    (case,) = [c for c in cases if c.id == case_id]
    r = run_one(case, name)
    assert r.verdict == "pass" and "rejected, as the case expects" in r.message and known in r.message, \
        f"{name} on {case_id}: verdict={r.verdict}, but should be the refusal {known} [{r.message}]"
