"""harness.api: importing it loads no framework, every name is documented, and its layers agree with the oracle."""
import textwrap

import numpy as np
import pytest

import harness.api as api
from harness.reference import agreement, oracle
from harness.layers.geometry import geometry
from test_no_framework_import import run_check

# A depthwise layer with every knob that moves data around: multiplier 2, 'same' padding, unequal strides,
# channels-last; 3 channels in, 6 out.
LAYER = "DepthwiseConv2D"
CONFIG = {"kernel_size": 3, "depth_multiplier": 2, "strides": (1, 2), "padding": "same", "use_bias": True}
INPUT_SHAPE = (2, 7, 8, 3)


def test_importing_the_api_loads_no_framework():
    done, loaded = run_check("import harness.api\nharness.api.load_cases(['cases'])")
    assert loaded == "", f"frameworks in sys.modules after importing harness.api={loaded}, but should be none"


@pytest.mark.parametrize("name", api.__all__)
def test_every_exported_name_exists_and_is_documented(name):
    obj = getattr(api, name, None)
    assert obj is not None, f"harness.api.__all__ names {name}, but the module has no such attribute"
    doc = (obj.__doc__ or "").strip()
    # A dataclass without a docstring gets its signature as __doc__: that is not documentation.
    assert doc and not doc.startswith(f"{name}("), f"harness.api.{name} has no docstring"


@pytest.fixture(scope="module")
def depthwise():
    """(x, Keras weights, float64 oracle output, per-element float32 error bound) of LAYER."""
    rng = np.random.default_rng(0)
    g = geometry(LAYER, CONFIG, INPUT_SHAPE)
    x = rng.standard_normal(INPUT_SHAPE).astype(np.float32)
    weights = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in g.weight_shapes().items()}
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    y_oracle = oracle.run(LAYER, CONFIG, x.astype(np.float64), w64)
    # The harness's own tolerance: gamma_K(u) * G per element, K = 3*3 taps + bias, G the layer on |x|, |w|.
    gauge = oracle.gauge(LAYER, CONFIG, x.astype(np.float64), w64)
    bound = agreement.error_bound(g.reduction_length(), "float32", gauge, y_oracle, g.activation)
    return x, weights, y_oracle, bound


def assert_agrees(y, depthwise, who):
    _, _, y_oracle, bound = depthwise
    assert y.shape == y_oracle.shape, f"{who}: output shape {y.shape}, but should be {y_oracle.shape}"
    m = agreement.measure(y, y_oracle, bound)
    assert m.n_over == 0, f"{who}: {m.n_over} elements over the float32 bound, worst error/bound {m.max_ratio:.3g}"


def test_build_keras_layer_computes_the_oracle(depthwise):
    x, weights, _, _ = depthwise
    obj = api.build_keras_layer(LAYER, CONFIG, "float32", x.shape, weights)
    import keras   # already imported, on the TensorFlow backend unless KERAS_BACKEND said otherwise

    for w in obj.weights:   # the weights given are the weights set, not a random initialisation
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), weights[w.name])
    assert_agrees(keras.ops.convert_to_numpy(obj(x)), depthwise, "keras")


def test_build_keras_layer_refuses_wrong_weight_names(depthwise):
    x, weights, _, _ = depthwise
    with pytest.raises(ValueError, match="weights are"):
        api.build_keras_layer(LAYER, CONFIG, "float32", x.shape, {"kernel": weights["kernel"]})


def test_build_torch_module_computes_the_oracle(depthwise):
    import torch

    x, weights, _, _ = depthwise
    module = api.build_torch_module(LAYER, CONFIG, weights, dtype="float32")
    with torch.no_grad():   # torch modules are channels-first: move C around the call
        y = module(torch.from_numpy(x).movedim(-1, 1)).movedim(1, -1).numpy()
    assert_agrees(y, depthwise, "torch")


def test_weight_conversion_round_trips(depthwise):
    _, weights, _, _ = depthwise
    state = api.keras_to_torch(LAYER, weights)
    back = api.torch_to_keras(LAYER, state, depth_multiplier=CONFIG["depth_multiplier"])
    assert back.keys() == weights.keys()
    for name in weights:
        np.testing.assert_array_equal(back[name], weights[name])


def test_load_cases_and_run_one(tmp_path):
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""\
        cases:
          - id: dw
            layer: DepthwiseConv2D
            input_shape: [1, 5, 5, 2]
            config: {kernel_size: 3}
            sweep: {strides: [1, 2]}
          - id: other
            layer: Conv1D
            input_shape: [1, 6, 2]
            config: {filters: 3, kernel_size: 3}
        """))
    cases, errors = api.load_cases([tmp_path], ["dw"])
    assert errors == [] and [c.id for c in cases] == ["dw(strides=1)", "dw(strides=2)"]
    result = api.run_one(cases[1], "oracle")
    assert isinstance(result, api.Result) and result.verdict == "pass", result
    with pytest.raises(ValueError, match="--case nope: no such case"):
        api.load_cases([tmp_path], ["nope"])


def test_load_cases_takes_one_path_as_a_path(tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("cases:\n  - {id: dw, layer: DepthwiseConv2D, input_shape: [1, 5, 5, 2], "
                                     "config: {kernel_size: 3}}\n")
    monkeypatch.chdir(tmp_path)
    for one in ("c.yaml", tmp_path / "c.yaml", str(tmp_path), tmp_path):   # a str or a Path is one path
        cases, errors = api.load_cases(one)
        assert errors == [] and [c.id for c in cases] == ["dw"], f"load_cases({one!r}) read {cases} {errors}"
    assert [c.id for c in api.load_cases("c.yaml", "dw")[0]] == ["dw"]   # and a str is one id
    for paths in (7, [7], None, [b"c.yaml"]):
        with pytest.raises(TypeError, match=r"load_cases: paths must be a path \(str or os.PathLike\) or a list"):
            api.load_cases(paths)
    with pytest.raises(TypeError, match=r"load_cases: case_ids must be a case id \(str\) or a list of them"):
        api.load_cases("c.yaml", [1])


def test_the_api_checks_the_types_of_its_arguments(tmp_path):
    (tmp_path / "c.yaml").write_text("cases:\n  - {id: dw, layer: DepthwiseConv2D, input_shape: [1, 5, 5, 2], "
                                     "config: {kernel_size: 3}}\n")
    (case,), _ = api.load_cases(tmp_path)
    weights = {"kernel": np.ones((3, 3, 2, 1), np.float32)}
    wrong = [
        (lambda: api.run_one("dw", "oracle"), TypeError, r"run_one: case must be a harness.api.Case"),
        (lambda: api.run_one(case, ["oracle"]), TypeError, r"run_one: engine_name must be an engine name \(str\)"),
        # A misspelt check ran the forward check and reported it as a pass of "Backward".
        (lambda: api.run_one(case, "oracle", "Backward"), ValueError, r"run_one: check must be 'forward' or "
                                                                      r"'backward', not 'Backward'"),
        (lambda: api.keras_to_torch("DepthwiseConv2D", [np.ones(3)]), TypeError,
         r"keras_to_torch: weights must be a mapping of weight names to arrays"),
        # A string of weight names was walked letter by letter.
        (lambda: api.torch_to_keras("Conv2D", "weight"), TypeError,
         r"torch_to_keras: state must be a mapping of weight names to arrays"),
        (lambda: api.get_kind(["Conv2D"]), TypeError, r"get_kind: name must be a layer name \(str\)"),
        (lambda: api.geometry("Conv2D", "filters", (1, 5, 5, 2)), TypeError, r"geometry: config must be a mapping"),
        (lambda: api.build_keras_layer("DepthwiseConv2D", {"kernel_size": 3}, np.float32, (1, 5, 5, 2)), TypeError,
         r"build_keras_layer: dtype must be a dtype name \(str\)"),
        (lambda: api.build_keras_layer("DepthwiseConv2D", {"kernel_size": 3}, "float32", 5), TypeError,
         r"build_keras_layer: input_shape must be a list of integers"),
        (lambda: api.build_torch_module("DepthwiseConv2D", {"kernel_size": 3}, weights, dtype=np.float32), TypeError,
         r"build_torch_module: dtype must be a torch dtype or its name"),
    ]
    for call, error, message in wrong:
        with pytest.raises(error, match=message):
            call()
