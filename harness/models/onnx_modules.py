"""ONNX nodes as the torch.nn modules they are equivalent to: attributes and initializers held as the module's, so
that the diff's mapping, checks and fixes read and edit them; the forward runs onnxruntime on a small ONNX model
built from the module's current attributes and parameters (the verdict is onnxruntime's computation, not torch's)."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ONNX elem types of the tensors the harness feeds (TensorProto.FLOAT, FLOAT16, DOUBLE)
ELEM_TYPES = {"float32": 1, "float16": 10, "float64": 11}


@dataclass
class Step:
    """One ONNX node of a module's graph: its inputs are 'x' (the module's input), the previous step's output
    ('x' again for the first) or constants the module names; the last step's output is the module's."""

    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Runtime:
    """What every module's graph shares with the ONNX file it came from: its opset and IR version."""

    opset: int
    ir_version: int


def run_steps(steps: Sequence[Step], consts: dict[str, np.ndarray], x: np.ndarray, runtime: Runtime) -> np.ndarray:
    """``steps`` as one ONNX model (constants as initializers) run by onnxruntime (CPU, its default optimisations,
    as the full graph ran) on ``x``."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    nodes = []
    previous = "x"
    for k, step in enumerate(steps):
        out = "y" if k == len(steps) - 1 else f"t{k}"
        ins = [previous if name == "@" else name for name in step.inputs]
        nodes.append(helper.make_node(step.op, ins, [out], name=f"n{k}", **step.attrs))
        previous = out
    elem = ELEM_TYPES[str(x.dtype)]
    graph = helper.make_graph(nodes, "one_node", [helper.make_tensor_value_info("x", elem, list(x.shape))],
                              [helper.make_tensor_value_info("y", elem, None)],
                              [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", runtime.opset)])
    model.ir_version = runtime.ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.ascontiguousarray(x)})
    return np.asarray(y)


def _array(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


@functools.cache
def classes() -> dict[str, type]:
    """The module classes by the torch.nn class they extend (built on first use: torch loads lazily)."""
    import torch

    nn = torch.nn

    class OrtModule:
        """The forward of every presented node: its graph (``steps``, from the current attributes) in onnxruntime."""

        runtime: Runtime
        onnx_node: str     # the ONNX node (or nodes) it presents, for messages

        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            raise NotImplementedError

        def forward(self, x: Any) -> Any:
            steps, consts = self.steps()
            return torch.from_numpy(run_steps(steps, consts, _array(x), self.runtime))

        def activation_like(self, name: str) -> Any:
            """The activation ``name`` (the harness's name) as a module running its ONNX node in onnxruntime: what
            an activation fix puts in this module's place (checks._activation_fix), None where ONNX has no node
            for it (torch's module is used then)."""
            return activation_module(name, self.runtime)

    class Replay(OrtModule):
        """An activation or reshape: no attribute a fix edits; its original node(s) run as they were."""

        recorded: list[Step]
        recorded_consts: dict[str, np.ndarray]

        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            return self.recorded, self.recorded_consts

    def pads_of(padding: Any, rank: int) -> list[int]:
        own = [int(p) for p in (padding if isinstance(padding, (tuple, list)) else (padding,) * rank)]
        return own + own   # symmetric: ONNX's (begins..., ends...)

    class OrtConv(OrtModule):
        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            m: Any = self
            rank = len(m.kernel_size)
            consts = {"W": _array(m.weight)}
            if m.bias is not None:
                consts["B"] = _array(m.bias)
            attrs = {"strides": list(m.stride), "dilations": list(m.dilation), "group": int(m.groups),
                     "kernel_shape": list(m.kernel_size), "pads": pads_of(m.padding, rank)}
            return [Step("Conv", ["x", *consts], attrs)], consts

    class OrtBatchNorm(OrtModule):
        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            m: Any = self
            c = m.num_features
            consts = {"scale": _array(m.weight) if m.weight is not None else np.ones(c, np.float32),
                      "B": _array(m.bias) if m.bias is not None else np.zeros(c, np.float32),
                      "mean": _array(m.running_mean), "var": _array(m.running_var)}
            return [Step("BatchNormalization", ["x", *consts], {"epsilon": float(m.eps)})], consts

    class OrtLinear(OrtModule):
        """Gemm (transB=1: torch's (out, in) weight), or MatMul then Add as the file computes it."""

        form: str   # gemm | matmul

        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            m: Any = self
            w = _array(m.weight)
            if self.form == "gemm":
                consts = {"W": w} | ({"B": _array(m.bias)} if m.bias is not None else {})
                return [Step("Gemm", ["x", *consts], {"transB": 1})], consts
            consts = {"W": np.ascontiguousarray(w.T)}
            steps = [Step("MatMul", ["x", "W"])]
            if m.bias is not None:
                consts["B"] = _array(m.bias)
                steps.append(Step("Add", ["@", "B"]))
            return steps, consts

    class OrtPool(OrtModule):
        op: str   # MaxPool | AveragePool

        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            m: Any = self
            k = m.kernel_size if isinstance(m.kernel_size, (tuple, list)) else (m.kernel_size,) * 2
            rank = len(k)
            s = m.stride if isinstance(m.stride, (tuple, list)) else (m.stride,) * rank
            attrs: dict[str, Any] = {"kernel_shape": list(k), "strides": list(s), "pads": pads_of(m.padding, rank),
                                     "ceil_mode": int(m.ceil_mode)}
            if self.op == "AveragePool":
                attrs["count_include_pad"] = int(m.count_include_pad)
            return [Step(self.op, ["x"], attrs)], {}

    class OrtPad(OrtModule):
        """A constant pad of the spatial axes (torch's padding order: last axis first, (before, after) each)."""

        def steps(self) -> tuple[list[Step], dict[str, np.ndarray]]:
            m: Any = self
            flat = [int(p) for p in m.padding]
            r = len(flat) // 2
            begins = [flat[2 * (r - 1 - a)] for a in range(r)]
            ends = [flat[2 * (r - 1 - a) + 1] for a in range(r)]
            value = float(getattr(m, "value", 0.0))
            if self.runtime.opset < 11:
                return [Step("Pad", ["x"], {"pads": [0, 0, *begins, 0, 0, *ends], "value": value})], {}
            consts: dict[str, np.ndarray] = {"pads": np.array([0, 0, *begins, 0, 0, *ends], np.int64),
                                             "value": np.array(value, np.float32)}
            return [Step("Pad", ["x", "pads", "value"])], consts

    out: dict[str, type] = {}
    for base, mixin in ((nn.Conv1d, OrtConv), (nn.Conv2d, OrtConv), (nn.BatchNorm1d, OrtBatchNorm),
                        (nn.BatchNorm2d, OrtBatchNorm), (nn.Linear, OrtLinear), (nn.MaxPool2d, OrtPool),
                        (nn.AvgPool2d, OrtPool), (nn.MaxPool1d, OrtPool), (nn.AvgPool1d, OrtPool),
                        (nn.ZeroPad2d, OrtPad), (nn.ConstantPad2d, OrtPad)):
        out[base.__name__] = type(f"Ort{base.__name__}", (mixin, base), {"__module__": __name__})
    for name in ("ReLU", "Hardtanh", "Sigmoid", "Tanh", "Hardsigmoid", "Hardswish", "SiLU", "Softmax", "ELU",
                 "SELU", "LeakyReLU", "Softplus", "Softsign", "Flatten", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
                 "Identity"):
        base = getattr(nn, name)
        out[name] = type(f"Ort{name}", (Replay, base), {"__module__": __name__})
    return out


# The harness's activation names -> (torch.nn kind and its arguments, the ONNX node(s) computing it).
_ACTIVATION_STEPS: dict[str, tuple[str, dict[str, Any], list[Step]]] = {
    "relu": ("ReLU", {}, [Step("Relu", ["x"])]),
    "hard_sigmoid": ("Hardsigmoid", {}, [Step("HardSigmoid", ["x"], {"alpha": 1.0 / 6.0, "beta": 0.5})]),
    "hard_silu": ("Hardswish", {}, [Step("HardSwish", ["x"])]),
    "silu": ("SiLU", {}, [Step("Sigmoid", ["x"]), Step("Mul", ["x", "@"])]),
    "sigmoid": ("Sigmoid", {}, [Step("Sigmoid", ["x"])]),
    "tanh": ("Tanh", {}, [Step("Tanh", ["x"])]),
    "elu": ("ELU", {}, [Step("Elu", ["x"])]),
    "selu": ("SELU", {}, [Step("Selu", ["x"])]),
    "softplus": ("Softplus", {}, [Step("Softplus", ["x"])]),
    "softsign": ("Softsign", {}, [Step("Softsign", ["x"])]),
    "softmax": ("Softmax", {"dim": -1}, [Step("Softmax", ["x"], {"axis": -1})]),
    "linear": ("Identity", {}, [Step("Identity", ["x"])]),
}


def activation_module(name: str, runtime: Runtime) -> Any:
    """A module computing the activation ``name`` by its ONNX node(s) in onnxruntime; None where there is none."""
    if name == "relu6":
        consts = {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
        steps = [Step("Clip", ["x", "lo", "hi"])] if runtime.opset >= 11 else \
            [Step("Clip", ["x"], {"min": 0.0, "max": 6.0})]
        return replay("Hardtanh", runtime, "Clip(0, 6)", steps, consts if runtime.opset >= 11 else {},
                      min_val=0.0, max_val=6.0)
    if name not in _ACTIVATION_STEPS or (name == "softmax" and runtime.opset < 13):
        return None
    kind, kwargs, steps = _ACTIVATION_STEPS[name]
    return replay(kind, runtime, " + ".join(s.op for s in steps), steps, {}, **kwargs)


def make(kind: str, runtime: Runtime, onnx_node: str, *args: Any, **kwargs: Any) -> Any:
    """An instance of the module presenting ``onnx_node`` as torch.nn ``kind`` (its constructor's arguments)."""
    module = classes()[kind](*args, **kwargs)
    module.runtime, module.onnx_node = runtime, onnx_node
    return module.eval()


def replay(kind: str, runtime: Runtime, onnx_node: str, steps: list[Step], consts: dict[str, np.ndarray],
           *args: Any, **kwargs: Any) -> Any:
    """A module whose forward runs the recorded ONNX node(s) (an activation, a reshape)."""
    module = make(kind, runtime, onnx_node, *args, **kwargs)
    module.recorded, module.recorded_consts = steps, consts
    return module


def set_params(module: Any, **values: np.ndarray | None) -> Any:
    """Parameters and buffers from the ONNX initializers (float32 as stored): weight/bias as Parameters (None
    removes one), running statistics as buffers."""
    import torch

    for name, value in values.items():
        if value is None:
            setattr(module, name, None)
            continue
        tensor = torch.from_numpy(np.array(value, copy=True))   # an initializer's array is read-only
        if name in ("running_mean", "running_var"):
            setattr(module, name, tensor)
        else:
            setattr(module, name, torch.nn.Parameter(tensor, requires_grad=False))
    return module
