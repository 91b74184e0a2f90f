"""nobuco: the harness's torch port (harness.torch_port.from_keras) converted to a Keras 2 model by nobuco
(pytorch_to_keras, the PyTorch -> TensorFlow direction a porter of a PyTorch model takes) and run in TensorFlow.

A channels_last case asks nobuco for TensorFlow's channel order on the model's input and output (nobuco inserts
and removes the transposes itself: its layout handling is judged too); a channels_first case keeps PyTorch's.
nobuco imports `keras.src.engine` (Keras 2): its own venv with TensorFlow 2.15 (engines/nobuco.txt,
`make engine-nobuco`).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from typing import Any, ClassVar

import numpy as np

from ..errors import EngineRejected
from . import port_variants, torchvision_standin
from .base import Engine, EngineOption, EngineOutput, Isolation, Request
from .keras_graph import first_line, run_converted, torch_port_and_input, versions
from .stopwatch import third_party


class NobucoEngine(Engine):
    name = "nobuco"
    weight_layout = "keras2"   # the converted Keras 2 layers' own weights (nobuco may split or merge them)
    framework = "tensorflow"
    isolation = Isolation(env=(("TF_CPP_MIN_LOG_LEVEL", "2"),), venv="nobuco")
    inherits = "torch"   # converts the torch port: the port's refusals (and torch's known bugs) are inherited
    dtype_limits: ClassVar[dict[str, str]] = {
        "bfloat16": "nobuco cannot convert a bfloat16 module: it reads the port's tensors through NumPy, which has no "
                    "bfloat16 (TypeError: Got unsupported ScalarType BFloat16)"}

    options: ClassVar[dict[str, EngineOption]] = port_variants.OPTIONS
    # nobuco's users port their models to PyTorch and back with nn modules (nn.ReLU6); nobuco 0.17 has no converter
    # for F.relu6 (nobuco-functional-relu6-refused): its port takes activation modules unless a case says otherwise.
    port_defaults: ClassVar[dict[str, str]] = {"port_activation": "module"}

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import torch

        self.torchvision_standin = torchvision_standin.install()
        import nobuco

        self.torch, self.nobuco = torch, nobuco

    def run(self, request: Request) -> EngineOutput:
        torch, nobuco = self.torch, self.nobuco
        g, x = request.geometry, request.inputs.x
        module, xt = torch_port_and_input(torch, request)
        styled = port_variants.restyle(module, xt.shape[2:], **port_variants.chosen(request.options,
                                                                                    self.port_defaults))
        order = nobuco.ChannelOrder.PYTORCH if g.channels_first else nobuco.ChannelOrder.TENSORFLOW
        log = io.StringIO()   # nobuco prints its trace (and the nodes it cannot convert) on stdout
        try:
            with contextlib.redirect_stdout(log), third_party():
                model = nobuco.pytorch_to_keras(module, args=[xt], inputs_channel_order=order,
                                                outputs_channel_order=order, save_trace_html=False)
        except (ValueError, NotImplementedError) as exc:   # Keras 2 (or nobuco) cannot express the layer
            raise EngineRejected(f"nobuco {versions('nobuco')['nobuco']} refused the port of {request.layer}: "
                                 f"{type(exc).__name__}: {first_line(exc)}") from exc
        except Exception as exc:   # nobuco refuses with bare Exceptions
            version = versions("nobuco")["nobuco"]
            if str(exc) == "Unimplemented nodes":   # no converter for an op of the port
                raise EngineRejected(f"nobuco {version} has no converter for "
                                     f"{', '.join(_unimplemented(log.getvalue())) or 'a node'} in the port of "
                                     f"{request.layer}") from exc
            refused = _conversion_exceptions(log.getvalue())
            if str(exc).startswith("Failed conversion") and refused:
                # A node's converter raised: the Keras 2 layer it builds refuses the arguments (e.g. strides > 1
                # with dilation_rate > 1); nobuco logs why and leaves a stub that fails here.
                raise EngineRejected(f"nobuco {version} could not convert the port of {request.layer}: "
                                     + "; ".join(refused)) from exc
            raise
        notes: list[str] = [*styled]
        y = run_converted(model, x, str(x.dtype), notes)
        notes.append("Keras layers: " + " ".join(type(layer).__name__ for layer in model.layers))
        return EngineOutput(y=np.ascontiguousarray(y), params=int(model.count_params()),
                            weight_shapes={w.name: tuple(int(d) for d in w.shape) for w in model.weights},
                            notes=notes)

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        info: dict[str, Any] = {**versions("nobuco", "torch", "tensorflow-cpu", "keras"),
                                "port": ", ".join(f"{k}={v}" for k, v in cls.port_defaults.items())}
        standin = getattr(sys.modules.get("torchvision"), "__harness_standin__", None)
        if standin:
            info["torchvision_standin"] = standin
        return {cls.name: info}


def _unimplemented(log: str) -> list[str]:
    """The ops nobuco lists under "Unimplemented nodes:" (e.g. relu6[torch.nn.functional])."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log).split("Unimplemented nodes:", 1)[-1]
    return list(dict.fromkeys(re.findall(r"[└├│]\S*\s+(\w+\[[\w.]+\])\(", text)))


def _conversion_exceptions(log: str) -> list[str]:
    """nobuco's "Conversion exception on node 'conv2d': <why>" lines, as "conv2d: <why>"."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log)
    found = re.findall(r"Conversion exception on node '([^']*)': (.*)", text)
    return list(dict.fromkeys(f"{node}: {why.strip()}" for node, why in found))
