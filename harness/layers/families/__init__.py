"""The layer families and their Keras layer kinds: one module per family, registered here (one line each)."""
from __future__ import annotations

from . import conv, depthwise, separable, transpose
from .base import COMMON_DEFAULTS, Arg, ConfigProblem, Family, Geometry, LayerKind

# The registry. A new family is a module with a Family subclass and its KINDS, plus one entry here.
FAMILY_MODULES = (conv, depthwise, separable, transpose)

FAMILIES: dict[str, Family] = {m.KINDS[0].family.name: m.KINDS[0].family for m in FAMILY_MODULES}
LAYERS: dict[str, LayerKind] = {k.name: k for m in FAMILY_MODULES for k in m.KINDS}


def get_kind(name: str) -> LayerKind:
    """The layer kind a case names (`layer:`); KeyError lists the known ones."""
    try:
        return LAYERS[name]
    except KeyError:
        raise KeyError(f"unknown layer {name!r}; known: {', '.join(LAYERS)}") from None


__all__ = ["COMMON_DEFAULTS", "Arg", "ConfigProblem", "FAMILIES", "Family", "Geometry", "LAYERS", "LayerKind",
           "get_kind"]
