"""The torch port as other porters write it (nn.ReLU6 modules, nn.ZeroPad2d, padding='same'): engine options."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..layers.activations import get_activation
from ..layers.padding import pad_amounts
from .base import EngineOption

# How the port applies its activation: torch's function (F.relu6: the harness's port) or an nn module (nn.ReLU6).
ACTIVATIONS = ("function", "module")
# How the port pads TensorFlow's 'same' (and Conv1D's 'causal'): F.pad at forward time (the harness's port), an
# nn.ZeroPadNd module sized for the input, or nn.ConvNd(padding='same') where torch takes it (stride 1, 'same').
PADDINGS = ("pad", "zeropad", "same")
OPTIONS: dict[str, EngineOption] = {
    "port_activation": EngineOption(str, "how the torch port applies its activation: function (F.relu6, the "
                                         "harness's port) or module (nn.ReLU6, nn.Sigmoid, ...)"),
    "port_padding": EngineOption(str, "how the torch port pads 'same'/'causal': pad (F.pad, the harness's port), "
                                      "zeropad (an nn.ZeroPadNd module) or same (nn.ConvNd(padding='same') at "
                                      "stride 1, else F.pad)"),
}
DEFAULTS = {"port_activation": "function", "port_padding": "pad"}
# torch's function (as harness.layers.activations names it) -> its nn module; Keras's constants go to the module
# as they go to the function (torch_kwargs: leaky_relu's slope 0.2).
_MODULES = {"nn.functional.relu": "ReLU", "nn.functional.relu6": "ReLU6", "sigmoid": "Sigmoid", "tanh": "Tanh",
            "nn.functional.silu": "SiLU", "nn.functional.gelu": "GELU", "nn.functional.elu": "ELU",
            "nn.functional.selu": "SELU", "nn.functional.softplus": "Softplus", "nn.functional.softsign": "Softsign",
            "nn.functional.hardsigmoid": "Hardsigmoid", "nn.functional.hardswish": "Hardswish",
            "nn.functional.leaky_relu": "LeakyReLU"}


def chosen(options: Mapping[str, Any], defaults: Mapping[str, str]) -> dict[str, str]:
    """The port options of a request: the case's, else the engine's defaults, else the harness's port; ValueError
    for a value no variant has (the schema checks only the type)."""
    found = {name: str(options.get(name, defaults.get(name, DEFAULTS[name]))) for name in DEFAULTS}
    for name, allowed in (("port_activation", ACTIVATIONS), ("port_padding", PADDINGS)):
        if found[name] not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {found[name]!r}")
    return found


def restyle(module: Any, spatial: Sequence[int], port_activation: str = "function",
            port_padding: str = "pad") -> list[str]:
    """Make the harness's port ``module`` (built for inputs of ``spatial`` lengths) the variant asked for, in place,
    computing the same function; the notes say what changed. Only the padded convs (conv, depthwise, the
    separable's depthwise step) and their activations take variants; a transposed conv's port is left as it is."""
    from torch import nn

    from .. import torch_port  # at call time: it imports torch

    notes: list[str] = []
    padded = [m for m in module.modules() if isinstance(m, torch_port._KerasPadded)]
    activated = padded + [m for m in module.modules() if isinstance(m, torch_port._SeparableNd)]
    if port_activation == "module":
        for m in activated:
            act = get_activation(m.activation)
            name = _MODULES.get(act.torch)
            if name is not None:
                m.activation_module = getattr(nn, name)(**dict(act.torch_kwargs))
                notes.append(f"activation as nn.{name}")
    for m in padded if port_padding != "pad" else []:
        if port_padding == "same" and m.keras_padding == "same" and all(s == 1 for s in m.stride):
            m.padding, m.keras_padding = "same", "valid"   # what nn.ConvNd(padding='same') builds
            notes.append("padding='same' in the conv")
        elif port_padding == "zeropad" and m.keras_padding != "valid":
            rank = len(m.kernel_size)
            pads = [v for axis in reversed(range(rank))   # nn.ZeroPadNd's order: F.pad's, last axis first
                    for v in pad_amounts(m.keras_padding, spatial[axis], m.kernel_size[axis], m.stride[axis],
                                         m.dilation[axis])]
            if any(pads):
                m.zero_pad = getattr(nn, f"ZeroPad{rank}d")(tuple(pads))
                notes.append(f"padding as nn.ZeroPad{rank}d{tuple(pads)}")
    if port_activation != "function" or port_padding != "pad":
        notes = list(dict.fromkeys(notes)) or ["nothing to change"]
        return [f"torch port variant (port_activation={port_activation}, port_padding={port_padding}): "
                + ", ".join(notes)]
    return []
