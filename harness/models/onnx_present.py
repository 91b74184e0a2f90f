"""ONNX nodes presented as module calls: each node that computes from the graph's input becomes the call of the torch.nn
module it is equivalent to (harness.models.onnx_modules), or is listed with why not."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .capture import TorchCall, nn_kind
from .onnx_modules import Runtime, Step, make, replay, set_params

FUNCTIONAL = frozenset({"Add", "Sub", "Mul", "Div", "Concat", "Max", "Min", "Mean", "Sum"})
IDENTITY = frozenset({"Identity", "Dropout"})
RESHAPES = frozenset({"Squeeze", "Flatten", "Reshape"})
# Activations with no attribute beyond the node's own: torch.nn kind, its constructor's keywords from the attributes.
ACTIVATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "Relu": ("ReLU", lambda a: {}), "Sigmoid": ("Sigmoid", lambda a: {}), "Tanh": ("Tanh", lambda a: {}),
    "HardSigmoid": ("Hardsigmoid", lambda a: {}), "HardSwish": ("Hardswish", lambda a: {}),
    "Softplus": ("Softplus", lambda a: {}), "Softsign": ("Softsign", lambda a: {}),
    "Selu": ("SELU", lambda a: {}), "Elu": ("ELU", lambda a: {"alpha": float(a.get("alpha", 1.0))}),
    "LeakyRelu": ("LeakyReLU", lambda a: {"negative_slope": float(a.get("alpha", 0.01))}),
}


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _auto_pads(attrs: dict[str, Any], spatial: tuple[int, ...], kernel: list[int], strides: list[int],
               dilations: list[int]) -> tuple[list[int], list[int]]:
    """(begins, ends) per spatial axis: the explicit pads, or what auto_pad computes (SAME_UPPER puts the odd
    pixel at the end, as TensorFlow)."""
    mode = attrs.get("auto_pad", "NOTSET")
    r = len(kernel)
    if mode in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * r)))
        return pads[:r], pads[r:]
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        total = 0 if mode == "VALID" else max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        low = total // 2 if mode != "SAME_LOWER" else total - total // 2
        begins.append(low)
        ends.append(total - low)
    return begins, ends


class Presenter:
    """Walks the graph once: each node that computes from the input presented as module call(s), or listed."""

    def __init__(self, model: Any, values: dict[str, np.ndarray], dynamic: set[str], runtime: Runtime) -> None:
        self.model, self.values, self.dynamic, self.runtime = model, values, dynamic, runtime
        self.calls: list[TorchCall] = []
        self.unlisted: list[tuple[str, str, str]] = []
        self.absorbed: set[int] = set()
        self.readers: dict[str, list[int]] = {}
        for k, node in enumerate(model.graph.node):
            for name in node.input:
                self.readers.setdefault(name, []).append(k)
        self.names: set[str] = set()

    def const(self, name: str) -> np.ndarray | None:
        return None if not name or name in self.dynamic else self.values.get(name)

    def path(self, node: Any, k: int) -> str:
        base = node.name or f"{node.op_type}_{k}"
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}#{i}", i + 1
        self.names.add(name)
        return name

    def call(self, path: str, module: Any, x: np.ndarray, y: np.ndarray, op: str) -> None:
        self.calls.append(TorchCall(index=len(self.calls), path=path, kind=nn_kind(module), module=module,
                                    inputs=[x], output=y,   # onnxruntime's own arrays: nothing writes them
                                    cls=f"onnx {op}"))

    def run(self) -> None:
        for k, node in enumerate(self.model.graph.node):
            if k in self.absorbed or not any(o in self.dynamic for o in node.output):
                continue   # a node of a constant's computation (folded here from the run's values)
            path = self.path(node, k)
            why = self.present(node, k, path)
            if why:
                self.unlisted.append((path, f"onnx {node.op_type}", why))

    def sole_reader(self, name: str) -> tuple[int, Any] | None:
        readers = self.readers.get(name, [])
        outputs = {o.name for o in self.model.graph.output}
        if len(readers) != 1 or name in outputs:
            return None
        return readers[0], self.model.graph.node[readers[0]]

    def present(self, node: Any, k: int, path: str) -> str:
        op, attrs = node.op_type, _attrs(node)
        dyn = [n for n in node.input if n in self.dynamic]
        if op in IDENTITY:
            return "an identity"
        if op == "Transpose":
            return f"a layout change (perm {list(attrs.get('perm', []))}): the diff matches each tensor's layout itself"
        if op in FUNCTIONAL:
            return ("computed as a functional point (no module): the Keras layer it computes is judged on the file's "
                    "own tensors where its output reaches a mapped node")
        if len(dyn) != 1:
            return f"{op} reads {len(dyn)} tensors of the graph: no torch.nn module equivalent"
        x, y = self.values[dyn[0]], self.values[node.output[0]]
        handler = getattr(self, f"p_{op.lower()}", None)
        if handler is not None:
            return handler(node, k, path, attrs, x, y)
        if op in ACTIVATIONS:
            kind, kwargs = ACTIVATIONS[op]
            return self.activation(node, path, kind, x, y, **kwargs(attrs))
        return f"{op} has no torch.nn equivalent presented here: not judged by itself"

    def activation(self, node: Any, path: str, kind: str, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> str:
        """The node replayed as it is (its constant inputs as initializers) behind torch.nn ``kind``."""
        consts: dict[str, np.ndarray] = {}
        inputs = []
        for i, name in enumerate(node.input):
            value = self.const(name)
            if name in self.dynamic:
                inputs.append("x")
            elif value is not None:
                consts[f"c{i}"] = value
                inputs.append(f"c{i}")
            else:
                inputs.append("")
        module = replay(kind, self.runtime, node.name, [Step(node.op_type, inputs, _attrs(node))], consts, **kwargs)
        self.call(path, module, x, y, node.op_type)
        return ""

    def p_clip(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
        for i, name in ((1, "min"), (2, "max")):
            if len(node.input) > i and node.input[i]:
                value = self.const(node.input[i])
                if value is None:
                    return f"Clip's {name} is computed in the graph"
                lo, hi = (float(value), hi) if name == "min" else (lo, float(value))
        if lo == 0.0 and hi == np.inf:
            return self.activation(node, path, "ReLU", x, y)
        return self.activation(node, path, "Hardtanh", x, y, min_val=float(lo), max_val=float(hi))

    def p_sigmoid(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        found = self.sole_reader(node.output[0])
        if found is not None and found[1].op_type == "Mul" and node.input[0] in found[1].input:
            j, mul = found   # x * sigmoid(x): SiLU, replayed as the two nodes the file has
            self.absorbed.add(j)
            steps = [Step("Sigmoid", ["x"]), Step("Mul", ["x", "@"] if mul.input[0] == node.input[0] else ["@", "x"])]
            module = replay("SiLU", self.runtime, f"{node.name} + {mul.name}", steps, {})
            self.call(path, module, x, self.values[mul.output[0]], "Sigmoid+Mul")
            return ""
        return self.activation(node, path, "Sigmoid", x, y)

    def p_softmax(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        axis = int(attrs.get("axis", -1 if self.runtime.opset >= 13 else 1))
        return self.activation(node, path, "Softmax", x, y, dim=axis)

    def p_conv(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        w = self.const(node.input[1])
        b = self.const(node.input[2]) if len(node.input) > 2 else None
        if w is None or (len(node.input) > 2 and node.input[2] and b is None):
            return "Conv's weight or bias is computed in the graph: no module holds it"
        r = w.ndim - 2
        if r not in (1, 2):
            return f"a Conv of {r} spatial axes: not presented"
        strides = list(attrs.get("strides", [1] * r))
        dilations = list(attrs.get("dilations", [1] * r))
        group = int(attrs.get("group", 1))
        begins, ends = _auto_pads(attrs, x.shape[2:], list(w.shape[2:]), strides, dilations)
        symmetric = begins == ends
        conv = make(f"Conv{r}d", self.runtime, node.name, w.shape[1] * group, w.shape[0], tuple(w.shape[2:]),
                    stride=tuple(strides), padding=tuple(begins) if symmetric else 0, dilation=tuple(dilations),
                    groups=group, bias=b is not None)
        set_params(conv, weight=w, bias=None if b is None else b.reshape(-1))
        if not symmetric:   # as a pad call then the conv with padding 0 (torch's conv pads both ends alike)
            padded = self.pad_call(path, node, x, begins, ends, 0.0)
            self.call(path, conv, padded, y, "Conv")
        else:
            self.call(path, conv, x, y, "Conv")
        return ""

    def pad_call(self, path: str, node: Any, x: np.ndarray, begins: list[int], ends: list[int],
                 value: float) -> np.ndarray:
        """The asymmetric pads of a Conv or pool node as a pad module before it (an ONNX Pad node when run)."""
        r = len(begins)
        flat = tuple(v for a in reversed(range(r)) for v in (begins[a], ends[a]))
        kind = f"ZeroPad{r}d" if value == 0.0 else f"ConstantPad{r}d"
        module = make(kind, self.runtime, f"{node.name} (its pads)", flat) if value == 0.0 else \
            make(kind, self.runtime, f"{node.name} (its pads)", flat, value)
        padded = np.pad(x, [(0, 0), (0, 0), *zip(begins, ends)], constant_values=value)
        self.call(f"{path}:pads", module, x, padded, "pads")
        return padded

    def p_batchnormalization(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray,
                             y: np.ndarray) -> str:
        params = [self.const(n) for n in node.input[1:5]]
        if any(p is None for p in params) or x.ndim not in (2, 3, 4):
            return "BatchNormalization's parameters are computed in the graph, or its input is not 2-D to 4-D"
        scale, bias, mean, var = params
        bn = make("BatchNorm2d" if x.ndim == 4 else "BatchNorm1d", self.runtime, node.name, x.shape[1],
                  eps=float(attrs.get("epsilon", 1e-5)))
        set_params(bn, weight=scale, bias=bias, running_mean=mean, running_var=var)
        self.call(path, bn, x, y, "BatchNormalization")
        return ""

    def p_gemm(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        w = self.const(node.input[1])
        c = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if w is None or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            return "a Gemm with a computed weight, transA, alpha or beta: no nn.Linear equivalent"
        weight = w if attrs.get("transB", 0) else w.T
        if c is not None and c.size != weight.shape[0]:
            return "a Gemm whose C is not a bias per output"
        return self.linear(path, node.name, weight, c, "gemm", x, y, "Gemm")

    def p_matmul(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        w = self.const(node.input[1])
        if w is None or w.ndim != 2 or node.input[0] not in self.dynamic:
            return "a MatMul of two tensors of the graph: no nn.Linear equivalent"
        bias, name, op = None, node.name, "MatMul"
        found = self.sole_reader(node.output[0])
        if found is not None and found[1].op_type == "Add":
            j, add = found
            other = next((n for n in add.input if n != node.output[0]), "")
            value = self.const(other)
            if value is not None and value.size == w.shape[1]:
                self.absorbed.add(j)   # MatMul then Add of a bias: one Linear, run as the two nodes
                bias, name, op, y = value.reshape(-1), f"{node.name} + {add.name}", "MatMul+Add", \
                    self.values[add.output[0]]
        return self.linear(path, name, np.ascontiguousarray(w.T), bias, "matmul", x, y, op)

    def linear(self, path: str, name: str, weight: np.ndarray, bias: np.ndarray | None, form: str, x: np.ndarray,
               y: np.ndarray, op: str) -> str:
        lin = make("Linear", self.runtime, name, weight.shape[1], weight.shape[0], bias=bias is not None)
        set_params(lin, weight=np.ascontiguousarray(weight), bias=None if bias is None else bias.reshape(-1))
        lin.form = form
        self.call(path, lin, x, y, op)
        return ""

    def p_maxpool(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        return self.pool(node, path, attrs, x, y, "MaxPool")

    def p_averagepool(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray,
                      y: np.ndarray) -> str:
        return self.pool(node, path, attrs, x, y, "AvgPool")

    def pool(self, node: Any, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray, kind: str) -> str:
        kernel = list(attrs["kernel_shape"])
        r = len(kernel)
        strides = list(attrs.get("strides", [1] * r))
        if any(d != 1 for d in attrs.get("dilations", [1] * r)) or r not in (1, 2) or len(node.output) > 1:
            return f"{node.op_type} with dilations, indices or {r} spatial axes: not presented"
        begins, ends = _auto_pads(attrs, x.shape[2:], kernel, strides, [1] * r)
        include = bool(attrs.get("count_include_pad", 0))
        if begins != ends and kind == "AvgPool" and not include:
            return "an AveragePool with asymmetric pads left out of its count: no torch.nn equivalent"
        args: dict[str, Any] = {"ceil_mode": bool(attrs.get("ceil_mode", 0))}
        if kind == "AvgPool":
            args["count_include_pad"] = include
        symmetric = begins == ends
        pool = make(f"{kind}{r}d", self.runtime, node.name, tuple(kernel), tuple(strides),
                    tuple(begins) if symmetric else 0, **args)
        pool.op = node.op_type
        if not symmetric:
            x = self.pad_call(path, node, x, begins, ends, -np.inf if kind == "MaxPool" else 0.0)
        self.call(path, pool, x, y, node.op_type)
        return ""

    def p_globalaveragepool(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray,
                            y: np.ndarray) -> str:
        return self.activation(node, path, "AdaptiveAvgPool2d", x, y, output_size=1) if x.ndim == 4 else \
            "a GlobalAveragePool of other than 2 spatial axes: not presented"

    def p_globalmaxpool(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray,
                        y: np.ndarray) -> str:
        return self.activation(node, path, "AdaptiveMaxPool2d", x, y, output_size=1) if x.ndim == 4 else \
            "a GlobalMaxPool of other than 2 spatial axes: not presented"

    def p_squeeze(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        if y.ndim == 2 and x.ndim >= 3:   # (N, C, 1, 1) -> (N, C), (N, H, W, C) -> (N, H*W*C): a Flatten
            return self.activation(node, path, "Flatten", x, y)
        return f"a {node.op_type} to {list(y.shape)}: no torch.nn module presented"

    p_flatten = p_reshape = p_squeeze

    def p_pad(self, node: Any, k: int, path: str, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray) -> str:
        pads = attrs.get("pads") if self.runtime.opset < 11 else self.const(node.input[1])
        value = attrs.get("value", 0.0) if self.runtime.opset < 11 else (
            self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0)
        if pads is None or value is None or attrs.get("mode", "constant") != "constant" or x.ndim != 4 or \
                (len(node.input) > 3 and node.input[3]):
            return "a Pad other than a constant pad of the spatial axes of a 4-D tensor: not presented"
        p = [int(v) for v in np.asarray(pads).reshape(-1)]
        if p[0] or p[1] or p[4] or p[5] or any(v < 0 for v in p):
            return "a Pad of the batch or channel axes (or a crop): not presented"
        flat = (p[3], p[7], p[2], p[6])   # torch's order: the last axis first
        fill = float(np.asarray(value))
        module = make("ZeroPad2d", self.runtime, node.name, flat) if fill == 0.0 else \
            make("ConstantPad2d", self.runtime, node.name, flat, fill)
        self.call(path, module, x, y, "Pad")
        return ""


