"""The public API for plug-in authors and other tools: cases, runs, the real layers, weight conversion, errors.

Importing this module imports no framework: keras is imported when build_keras_layer is called, torch when
build_torch_module is. Everything else here is NumPy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .convert import keras_to_torch, torch_to_keras
from .engines.base import Engine, EngineOption, EngineOutput, Inputs, Request
from .errors import CaseError, EngineRejected, EngineSkip
from .families import get_kind
from .keras_layer import build_keras_layer
from .layers import Geometry, geometry
from .runner import Result, run_one
from .schema import Case
from .selection import load_cases

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
]


def build_torch_module(layer: str, config: Mapping[str, Any], weights: Mapping[str, np.ndarray], *,
                       in_channels: int | None = None, depthwise_bias: np.ndarray | None = None,
                       dtype: str | torch.dtype = "float32") -> torch.nn.Module:
    """The harness's torch port of the Keras layer ``layer`` (harness.torch_port.from_keras), with the Keras-layout
    ``weights`` converted and loaded.

    The module is channels-first, as every torch module is (``data_format`` is ignored): move the channel axis of
    channels-last inputs yourself. ``in_channels`` defaults to what the kernel shape says; ``depthwise_bias``
    (separable layers only) builds the variant with a bias on both convs; ``dtype`` is a torch dtype or its name.
    """
    import torch

    from .torch_port import from_keras

    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return from_keras(layer, config, weights, in_channels=in_channels, depthwise_bias=depthwise_bias, dtype=tdtype)
