"""The family and engine registries: each family answers every question the harness asks, and nothing outside
the registries asks by name."""
from __future__ import annotations

import re

import numpy as np
import pytest

from harness import engines
from harness.convert import keras_to_torch, torch_to_keras
from harness.layers.families import FAMILIES, LAYERS
from harness.layers.geometry import geometry, output_shape
from testkit import HARNESS


def _config(kind) -> dict:
    """A configuration that exercises every argument the kind takes (groups 2, multiplier 2, strides 2)."""
    config = {"kernel_size": 3, "strides": 2, "padding": "same"}
    if "filters" in kind.config_keys:
        config["filters"] = 4
    if "groups" in kind.config_keys:
        config["groups"] = 2
    if "depth_multiplier" in kind.config_keys:
        config["depth_multiplier"] = 2
    return config


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_kind_answers_every_question_of_its_family(name):
    kind = LAYERS[name]
    config = _config(kind)
    shape = (2, *(7,) * kind.rank, 4)
    g = geometry(name, config, shape)
    family = kind.family
    assert family is FAMILIES[family.name], f"family={family!r}, but should be registered as {family.name!r}"
    shapes = g.weight_shapes()
    assert tuple(shapes) == kind.weight_names, f"weights={tuple(shapes)}, but should be {kind.weight_names} [{name}]"
    rng = np.random.default_rng(0)
    w = {k: rng.standard_normal(s) for k, s in shapes.items()}
    x = rng.standard_normal(shape)
    y = family.forward(x, w, g)
    want = output_shape(g, shape)
    assert y.shape == want, f"forward shape={y.shape}, but should be {want} [{name}]"
    assert family.in_channels_from(w, config) == 4, f"in_channels_from={family.in_channels_from(w, config)} [{name}]"
    assert g.reduction_length() > family.reduction_length(g) >= 1, f"reduction length wrong [{name}]"
    back = torch_to_keras(name, keras_to_torch(name, w), in_channels=4)
    for k in w:
        assert np.array_equal(back[k], w[k]), f"{k} round trip differs [{name}]"
    for stage in family.stages:
        z = family.stage_forward(stage, x, w, g)
        assert z.shape[:-1] == want[:-1], f"stage {stage} shape={z.shape} [{name}]"
        assert family.stage_reduction_length(stage, g) >= 1


def _outside(folder_allowed: str, pattern: str) -> list[str]:
    hits = []
    for path in HARNESS.rglob("*.py"):
        if folder_allowed in path.relative_to(HARNESS).as_posix():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(pattern, line):
                hits.append(f"{path.relative_to(HARNESS)}:{n}: {line.strip()}")
    return hits


def test_no_family_branch_outside_the_families():
    hits = _outside("families/", r"family\s*(==|!=)|family\.name\s*(==|!=)|family\s+(not\s+)?in\s*\(")
    assert not hits, "family branches outside harness/layers/families/ (ask the family instead):\n" + "\n".join(hits)


def test_no_engine_name_comparison_outside_the_registry():
    names = "|".join(engines.BUILTIN)
    pattern = rf"""(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=|in\s)"""
    hits = _outside("engines/__init__.py", pattern)
    assert not hits, "engine names compared outside harness/engines/__init__.py (use a trait):\n" + "\n".join(hits)


def test_the_reference_is_the_one_builtin_that_says_so():
    refs = [n for n in engines.BUILTIN if engines.engine_class(n).reference]
    assert refs == [engines.REFERENCE], f"reference engines={refs}, but should be [{engines.REFERENCE!r}]"


def test_engine_options_apply_where_their_family_has_the_variant():
    torch = engines.engine_class("torch")
    assert torch.option_problems({"depthwise_bias": True}, LAYERS["SeparableConv2D"]) == []
    problems = torch.option_problems({"depthwise_bias": True}, LAYERS["Conv2D"])
    assert problems and "separable" in problems[0][1], f"problems={problems}, but should refuse Conv2D"
    assert torch.option_problems({"depthwise_bias": 1}, LAYERS["SeparableConv1D"]), "an int is not a bool"
    assert torch.option_problems({"nope": True}, LAYERS["SeparableConv1D"]), "an unknown option is refused"


# ---------------------------------------------------------------- a family is one module (issue 18)

PRIMITIVES = ("conv_ops", "conv_grads", "padding", "layouts")


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_family_answers_the_sizing_questions_itself(name):
    """Output lengths and the padding split come from the family, and agree with each other and the forward."""
    from harness.layers.families.base import COMMON_ARGS, Arg
    from harness.layers.padding import effective_kernel

    kind = LAYERS[name]
    family = kind.family
    g = geometry(name, _config(kind), (2, *(7,) * kind.rank, 4))
    spatial = (7,) * kind.rank
    out, widths = family.output_spatial(g, spatial), family.pad_widths(g, spatial)
    assert g.output_spatial(spatial) == out and g.pad_widths(spatial) == widths, f"Geometry asks the family [{name}]"
    assert output_shape(g, (2, *spatial, 4))[1:-1] == out, f"output_shape disagrees with the family [{name}]"
    for n, (b, a), k, s, d, o in zip(spatial, widths, g.kernel_size, g.strides, g.dilation, out):
        if family.pads_crop_output:   # the full scatter, (n - 1) * s + ek long, cropped by b and a
            length = (n - 1) * s + effective_kernel(k, d) - b - a
        else:                         # the input padded by b and a, then the strided windows that fit
            length = (n + b + a - effective_kernel(k, d)) // s + 1
        assert length == o, f"pad split {b}+{a} gives {length} outputs, but should give {o} [{name}]"
    assert family.extra_keys == tuple(family.arguments), f"extra_keys are the declared arguments [{name}]"
    for key, arg in {**family.arguments, **COMMON_ARGS}.items():
        assert isinstance(arg, Arg), f"{key} is declared with an Arg [{name}]"
        assert g.arg(key) is not None or arg.optional, f"Geometry holds {key} [{name}]"


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_family_declares_its_numpy_port_steps(name):
    """The NumPy port (the mutants' base) holds no family's steps: each family's port_steps brings its own, and the
    port composed from them computes the oracle's function."""
    from harness.mutation.port import Port, numpy_port

    kind = LAYERS[name]
    steps = kind.family.port_steps
    assert isinstance(steps, type), f"port_steps={steps!r}, but should be a class of steps [{name}]"
    own = {n for n in vars(steps) if not n.startswith("_")}
    assert own and not own & set(vars(Port)), f"steps {sorted(own & set(vars(Port)))} are the port's, not the family's"
    config = _config(kind)
    shape = (2, *(7,) * kind.rank, 4)
    g = geometry(name, config, shape)
    rng = np.random.default_rng(1)
    w = {k: rng.standard_normal(s) for k, s in g.weight_shapes().items()}
    x = rng.standard_normal(shape)
    got = numpy_port(name, config, x, w)
    want = kind.family.forward(x, {k: v for k, v in w.items() if k != "bias"}, g) + w["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"the port of {name}")


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_family_declares_its_torch_port(name):
    from harness import torch_port

    family = LAYERS[name].family
    module, _, attribute = family.torch_port.partition(":")
    assert module and attribute, f"torch_port={family.torch_port!r}, but should be 'module:attribute' [{name}]"
    mixin = torch_port._MIXINS[family]
    assert issubclass(torch_port.CLASSES[name], mixin), f"the port of {name} does not derive its family's mixin"


def test_a_new_argument_needs_nothing_outside_its_family(tmp_path, monkeypatch):
    """A family that declares one more argument (a transposed conv's output_padding) gets it validated by the
    schema, normalised into the Geometry and checked by size_problems, with no other code."""
    from harness.layers.families.base import Arg, size_problems
    from harness.cases.schema import load_file

    family = LAYERS["Conv2D"].family
    monkeypatch.setattr(family, "arguments", {**family.arguments,
                                              "output_padding": Arg(per_axis=True, minimum=0, optional=True)})
    base = {"filters": 2, "kernel_size": 3}
    assert geometry("Conv2D", {**base, "output_padding": [0, 1]}, (1, 5, 5, 2)).arg("output_padding") == (0, 1)
    assert geometry("Conv2D", {**base, "output_padding": None}, (1, 5, 5, 2)).arg("output_padding") is None
    negative = geometry("Conv2D", {**base, "output_padding": -1}, (1, 5, 5, 2))
    assert size_problems(negative)[0][0] == "config.output_padding", f"problems={size_problems(negative)}"
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n"
                    "  - {id: ok, layer: Conv2D, input_shape: [1, 5, 5, 2], config: {filters: 2, kernel_size: 3, "
                    "output_padding: [0, 1]}}\n"
                    "  - {id: bad, layer: Conv2D, input_shape: [1, 5, 5, 2], config: {filters: 2, kernel_size: 3, "
                    "output_padding: -1}}\n")
    cases, errors = load_file(path)
    assert [c.id for c in cases] == ["ok"], f"cases={[c.id for c in cases]}, errors={[str(e) for e in errors]}"
    assert len(errors) == 1 and errors[0].field == "config.output_padding" and ">= 0" in str(errors[0]), \
        f"errors={[str(e) for e in errors]}"


def test_geometry_lives_beside_layer_kind_and_primitives_import_nothing_above_them():
    import ast

    from harness.layers import geometry as layers
    from harness.layers.families import base

    assert layers.Geometry is base.Geometry and base.Geometry.__module__ == base.LayerKind.__module__
    for name in PRIMITIVES:
        tree = ast.parse((HARNESS / "layers" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
        above = {m for m in imported if (m or "").split(".")[0] not in PRIMITIVES}
        assert not above, f"harness/layers/{name}.py imports {sorted(map(str, above))}: a primitive imports only primitives"


def test_the_output_length_formula_is_written_once():
    """Only the families (and harness.layers.padding's rule they call) compute an output length; everyone else asks the
    Geometry. The mutants write wrong copies on purpose (each is one converter's mistake)."""
    pattern = r"//\s*s\s*\+\s*1|//\s*stride\s*\+\s*1|\boutput_length\("
    hits = [h for h in _outside("families/", pattern)
            if not h.startswith(("layers/padding.py:", "mutation/mutants.py:"))]
    assert not hits, "output-length formula copies outside harness/layers/families/ (ask g.output_spatial):\n" + \
        "\n".join(hits)
