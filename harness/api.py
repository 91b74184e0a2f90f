"""The public API for plug-in authors and other tools: cases, runs, the real layers, weight conversion, errors.

Importing this module imports no framework: keras is imported when build_keras_layer is called, torch when
build_torch_module is. Everything else here is NumPy.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from . import convert, keras_layer
from .cases.schema import Case
from .cases.selection import load_cases
from .diagnosis.diagnose import Diagnoser
from .engines.base import Engine, EngineOption, EngineOutput, Inputs, Request
from .errors import CaseError, EngineRejected, EngineSkip
from .judge import runner
from .judge.runner import Result
from .layers import families
from .layers import geometry as layers
from .layers.geometry import Geometry
from .models.diff import DiffResult

if TYPE_CHECKING:   # for the annotations only: importing torch at run time is what this module avoids
    import torch

__all__ = [
    "Case", "CaseError", "Result", "load_cases", "run_one",
    "build_keras_layer", "build_torch_module", "keras_to_torch", "torch_to_keras",
    "EngineRejected", "EngineSkip",
    # writing an engine: what it receives and returns (a plug-in function may return an EngineOutput too)
    "Engine", "EngineOption", "EngineOutput", "Inputs", "Request",
    # the layer database: a kind's family, a configuration normalised
    "get_kind", "Geometry", "geometry",
    # a whole Keras model against its PyTorch port
    "diff", "DiffResult",
]


# ---------------------------------------------------------------- argument types
# A caller's wrong type is a TypeError naming the function, the argument and what it takes, at the call: a str
# where a list or mapping belongs would otherwise be walked letter by letter, a misspelt check run as another.
F = TypeVar("F", bound=Callable[..., Any])
Check = Callable[[Any], bool]


def _mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def _shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in value)


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _checked(function: F, **expected: tuple[Check, str]) -> F:
    """``function`` with its arguments named in ``expected`` checked (check, what it takes) before it runs."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments   # a wrong count is Python's own TypeError
        for name, (check, what) in expected.items():
            if name in arguments and not check(arguments[name]):
                value = arguments[name]
                raise TypeError(f"{function.__name__}: {name} must be {what}, got {type(value).__name__} "
                                f"{repr(value)[:60]}")
        return function(*args, **kwargs)

    return cast(F, checked)   # functools.wraps keeps function's signature, name and docstring


_LAYER = (_str, "a layer name (str), e.g. 'Conv2D'")
_CONFIG = (_mapping, "a mapping of the layer's arguments, as a case's config")
_WEIGHTS = (_mapping, "a mapping of weight names to arrays")

get_kind = _checked(families.get_kind, name=_LAYER)
geometry = _checked(layers.geometry, layer=_LAYER, config=_CONFIG)
keras_to_torch = _checked(convert.keras_to_torch, layer=_LAYER, weights=_WEIGHTS)
torch_to_keras = _checked(convert.torch_to_keras, layer=_LAYER, state=_WEIGHTS)
build_keras_layer = _checked(
    keras_layer.build_keras_layer, layer=_LAYER, config=_CONFIG,
    dtype=(_str, "a dtype name (str), e.g. 'float32'"),
    input_shape=(_shape, "a list of integers, batch first"),
    weights=(lambda w: w is None or _mapping(w), "None or a mapping of weight names to arrays"))


def run_one(case: Case, engine_name: str, check: str = "forward", diagnose: bool = True) -> Result:
    """Run and judge one check of ``case`` (from load_cases) in engine ``engine_name``: "forward" (the output)
    or "backward" (the gradients); never raises for an engine's failure: every outcome is a Result. A failure
    carries its findings (which known mistake reproduces it, ...) as the CLI's and pytest's do; ``diagnose=False``
    skips that search."""
    if not isinstance(case, Case):
        raise TypeError(f"run_one: case must be a harness.api.Case (from load_cases), got {type(case).__name__} "
                        f"{repr(case)[:60]}")
    if not isinstance(engine_name, str):
        raise TypeError(f"run_one: engine_name must be an engine name (str), e.g. 'oracle', got "
                        f"{type(engine_name).__name__} {repr(engine_name)[:60]}")
    if check not in ("forward", "backward"):
        raise ValueError(f"run_one: check must be 'forward' or 'backward', not {check!r}")
    return runner.run_one(case, engine_name, check, Diagnoser() if diagnose else None)


def build_torch_module(layer: str, config: Mapping[str, Any], weights: Mapping[str, np.ndarray], *,
                       in_channels: int | None = None, depthwise_bias: np.ndarray | None = None,
                       dtype: str | torch.dtype = "float32") -> torch.nn.Module:
    """The harness's torch port of the Keras layer ``layer`` (harness.torch_port.from_keras), with the Keras-layout
    ``weights`` converted and loaded.

    The module is channels-first, as every torch module is (``data_format`` is ignored): move the channel axis of
    channels-last inputs yourself. ``in_channels`` defaults to what the kernel shape says; ``depthwise_bias``
    (separable layers only) builds the variant with a bias on both convs; ``dtype`` is a torch dtype or its name.
    """
    for name, value, check, what in (("layer", layer, *_LAYER), ("config", config, *_CONFIG),
                                     ("weights", weights, *_WEIGHTS)):
        if not check(value):
            raise TypeError(f"build_torch_module: {name} must be {what}, got {type(value).__name__} "
                            f"{repr(value)[:60]}")
    import torch

    from .torch_port import from_keras  # at call time: it imports torch (frameworks load lazily)

    tdtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(tdtype, torch.dtype):
        raise TypeError(f"build_torch_module: dtype must be a torch dtype or its name, e.g. 'float32', got "
                        f"{type(dtype).__name__} {repr(dtype)[:60]}")
    return from_keras(layer, config, weights, in_channels=in_channels, depthwise_bias=depthwise_bias, dtype=tdtype)


def diff(keras_model: Any, torch_module: Any, x: np.ndarray, *, torch_layout: str = "channels_first",
         overrides: Mapping[str, list[str]] | None = None) -> DiffResult:
    """A Keras model against its PyTorch port on the input ``x`` (batch first, channels last: the Keras input):
    every Keras layer mapped to the torch leaf modules that compute it (``overrides``: Keras layer name -> torch
    module paths), each judged against the float64 oracle isolated, by its weights and by its configuration.
    ``bool(result)`` is whether every mapped layer agrees; ``result.culprit`` names the first that does not;
    harness.models.render.render_text gives the lines ``python -m harness diff`` prints."""
    if torch_layout not in ("channels_first", "channels_last"):
        raise ValueError(f"diff: torch_layout must be 'channels_first' or 'channels_last', not {torch_layout!r}")
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        raise TypeError(f"diff: x must be a NumPy array with a batch axis, got {type(x).__name__}")
    from .models.diff import diff as run_diff  # keeps the name diff for the public function

    return run_diff(keras_model, torch_module, x, torch_first=torch_layout == "channels_first", overrides=overrides)
