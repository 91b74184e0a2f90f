"""A stand-in for torchvision where the real one cannot be imported, for converters that import it for a few
detection ops only (onnx2torch: NMS, RoiAlign; nobuco: NMS, StochasticDepth, FrozenBatchNorm2d and its tracer's
list of modules to wrap).

PyPI's torchvision wheels for torch 2.13 are CUDA builds: next to the CPU torch (the only one the harness installs)
their C++ ops do not load and `import torchvision` fails. No convolution layer reaches those ops, so a stand-in
whose every attribute is a placeholder (usable as a dict key or a decorator argument, raising when called) lets
the converters load; the engines record that it was used (environment(), and the reason in it).
"""
from __future__ import annotations

import sys
import types
from typing import Any

_SUBMODULES = ("ops", "ops.boxes", "ops.poolers", "transforms", "transforms.functional", "utils", "models", "io")
# torchvision's C++ ops that converters name as torch.ops.torchvision.X: declared (schema only, no kernel).
_OPS = {"nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}
_library: Any = None   # the torch.library.Library that holds those declarations (kept alive)


class _StandinModule(types.ModuleType):
    """A module whose unknown public attributes are placeholders that raise when used."""

    reason: str = ""
    __harness_standin__: str   # set on the root module only (install): why the stand-in is there

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        reason = f"{self.__name__}.{attr} is unavailable: {self.reason}"

        def unavailable(*_a: Any, **_k: Any) -> Any:
            raise RuntimeError(reason)

        placeholder = type(attr, (), {"__init__": unavailable, "__doc__": reason, "__module__": self.__name__})
        setattr(self, attr, placeholder)
        return placeholder


def install(reason_prefix: str = "torchvision cannot be imported here") -> str | None:
    """Import torchvision, or put the stand-in in its place: None where the real one imported, else the reason
    (also kept as ``torchvision.__harness_standin__``)."""
    current = sys.modules.get("torchvision")
    if current is not None:
        return getattr(current, "__harness_standin__", None)
    try:
        import torchvision  # noqa: F401 - importing it is the test
        return None
    except Exception as exc:  # noqa: BLE001 - ImportError (not installed) or RuntimeError (its C++ ops did not load)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{reason_prefix} ({type(exc).__name__}: {text[:120]})"
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]   # what a failed import left half-initialised
    root = _module("torchvision", reason)
    root.__harness_standin__ = reason
    for dotted in _SUBMODULES:
        parent: types.ModuleType = root
        for part in dotted.split("."):
            name = f"{parent.__name__}.{part}"
            child = sys.modules.get(name) or _module(name, reason)
            setattr(parent, part, child)
            parent = child
    _declare_ops()
    return reason


def _module(name: str, reason: str) -> _StandinModule:
    module = _StandinModule(name)
    module.reason = reason
    module.__path__ = []   # a package: `import torchvision.ops` finds the child
    sys.modules[name] = module
    return module


def _declare_ops() -> None:
    global _library
    import torch

    missing = {}
    for op, schema in _OPS.items():
        try:
            getattr(torch.ops.torchvision, op)
        except (AttributeError, RuntimeError):
            missing[op] = schema
    if missing:
        _library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in missing.values():
            _library.define(schema)
