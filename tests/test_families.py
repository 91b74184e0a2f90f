"""The family and engine registries: each family answers every question the harness asks, and nothing outside
the registries asks by name."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harness import engines
from harness.convert import keras_to_torch, torch_to_keras
from harness.families import FAMILIES, LAYERS
from harness.layers import geometry, output_shape

HARNESS = Path(__file__).resolve().parent.parent / "harness"


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
    assert not hits, "family branches outside harness/families/ (ask the family instead):\n" + "\n".join(hits)


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
