"""harness.api: importing it loads no framework, every name is documented, and its layers agree with the oracle."""
import textwrap

import numpy as np
import pytest

import harness.api as api
from harness import agreement, oracle
from harness.layers import geometry
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
