"""Coverage of the cases, in the manner of ONNX's backend-test coverage: per layer kind, which parameter values the
cases exercise, and which of the values that matter to ports are not exercised."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ..cases.schema import Case
from ..layers.geometry import ACTIVATIONS, LAYERS, Geometry, LayerKind, spatial_shape
from ..tensors.values import DTYPES

Pred = Callable[[Case, Geometry], bool]


def _axes(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _output_padding(g: Geometry) -> tuple[int, ...] | None:
    """A transposed conv's output_padding (None: Keras's default); None for a kind without it."""
    return g.arg("output_padding") if "output_padding" in g.kind.config_keys else None


def _takes_output_padding(kind: LayerKind) -> bool:
    return "output_padding" in kind.config_keys


def _spatial(c: Case, g: Geometry) -> tuple[int, ...]:
    return spatial_shape(g, c.input_shape)


# parameter -> (the value a case has, for the table of values seen; applies to a kind?)
VALUES: dict[str, tuple[Callable[[Case, Geometry], Any], Callable[[LayerKind], bool]]] = {
    "kernel_size": (lambda c, g: _axes(g.kernel_size), lambda k: True),
    "strides": (lambda c, g: _axes(g.strides), lambda k: True),
    "padding": (lambda c, g: g.padding, lambda k: True),
    "dilation_rate": (lambda c, g: _axes(g.dilation), lambda k: True),
    "depth_multiplier": (lambda c, g: g.depth_multiplier, lambda k: "depth_multiplier" in k.config_keys),
    "groups": (lambda c, g: g.groups, lambda k: "groups" in k.config_keys),
    "filters": (lambda c, g: g.filters, lambda k: "filters" in k.config_keys),
    "output_padding": (lambda c, g: _output_padding(g), lambda k: "output_padding" in k.config_keys),
    "in_channels": (lambda c, g: g.in_channels, lambda k: True),
    "data_format": (lambda c, g: "channels_first" if g.channels_first else "channels_last", lambda k: True),
    "dtype": (lambda c, g: c.dtype, lambda k: True),
    "activation": (lambda c, g: g.activation, lambda k: True),
    "use_bias": (lambda c, g: g.use_bias, lambda k: True),
    "batch": (lambda c, g: c.input_shape[0], lambda k: True),
    "spatial": (lambda c, g: _axes(_spatial(c, g)), lambda k: True),
}

def _multi(k: LayerKind) -> bool:
    """Several spatial axes: they can differ from each other."""
    return k.rank >= 2


def _any(k: LayerKind) -> bool:
    return True


def _unequal(values: tuple[int, ...]) -> bool:
    return len(set(values)) > 1


def _kind_takes(padding: str) -> Callable[[LayerKind], bool]:
    return lambda k: padding in k.paddings


def _geometry_is(field: str, value: object) -> Pred:
    return lambda c, g: getattr(g, field) == value


def _case_is(field: str, value: object) -> Pred:
    return lambda c, g: getattr(c, field) == value


# parameter -> [(bucket, applies to kind, predicate)]: the values that matter to ports.
BUCKETS: dict[str, list[tuple[str, Callable[[LayerKind], bool], Pred]]] = {
    "kernel_size": [("1", _any, lambda c, g: 1 in g.kernel_size),
                    ("even", _any, lambda c, g: any(k % 2 == 0 for k in g.kernel_size)),
                    ("odd > 1", _any, lambda c, g: any(k % 2 and k > 1 for k in g.kernel_size)),
                    (">= 4", _any, lambda c, g: max(g.kernel_size) >= 4),
                    ("rectangular", _multi, lambda c, g: _unequal(g.kernel_size))],
    "strides": [("1", _any, lambda c, g: max(g.strides) == 1), ("2", _any, lambda c, g: 2 in g.strides),
                (">= 3", _any, lambda c, g: max(g.strides) >= 3),
                ("unequal", _multi, lambda c, g: _unequal(g.strides))],
    "padding": [(p, _kind_takes(p), _geometry_is("padding", p)) for p in ("valid", "same", "causal")],
    "dilation_rate": [("1", _any, lambda c, g: max(g.dilation) == 1), ("2", _any, lambda c, g: 2 in g.dilation),
                      (">= 3", _any, lambda c, g: max(g.dilation) >= 3),
                      ("unequal", _multi, lambda c, g: _unequal(g.dilation))],
    "depth_multiplier": [("1", _any, lambda c, g: g.depth_multiplier == 1),
                         ("2", _any, lambda c, g: g.depth_multiplier == 2),
                         (">= 3", _any, lambda c, g: g.depth_multiplier >= 3),
                         ("M > 1 with C > 1", _any, lambda c, g: g.depth_multiplier > 1 and g.in_channels > 1)],
    "groups": [("1", _any, lambda c, g: g.groups == 1),
               ("1 < groups < C", _any, lambda c, g: 1 < g.groups < g.in_channels),
               ("groups = C > 1", _any, lambda c, g: g.groups == g.in_channels > 1)],
    "output_padding": [("none", _takes_output_padding, lambda c, g: _output_padding(g) is None),
                       ("0", _takes_output_padding, lambda c, g: 0 in (_output_padding(g) or ())),
                       ("> 0", _takes_output_padding, lambda c, g: max(_output_padding(g) or (0,)) > 0),
                       ("> 0 with same", _takes_output_padding,
                        lambda c, g: g.padding == "same" and max(_output_padding(g) or (0,)) > 0)],
    "filters": [("1", _any, lambda c, g: g.filters == 1), ("> 1", _any, lambda c, g: (g.filters or 0) > 1),
                ("!= input channels", _any, lambda c, g: g.filters != g.in_channels)],
    "in_channels": [("1", _any, lambda c, g: g.in_channels == 1), ("> 1", _any, lambda c, g: g.in_channels > 1)],
    "data_format": [(f, _any, _geometry_is("channels_first", f == "channels_first"))
                    for f in ("channels_last", "channels_first")],
    "dtype": [(d, _any, _case_is("dtype", d)) for d in DTYPES],
    "activation": [(a, _any, _geometry_is("activation", a)) for a in ACTIVATIONS],
    "use_bias": [(str(b).lower(), _any, _geometry_is("use_bias", b)) for b in (True, False)],
    "batch": [("1", _any, lambda c, g: c.input_shape[0] == 1), ("> 1", _any, lambda c, g: c.input_shape[0] > 1)],
    "spatial": [("even length", _any, lambda c, g: any(n % 2 == 0 for n in _spatial(c, g))),
                ("odd length", _any, lambda c, g: any(n % 2 for n in _spatial(c, g))),
                ("H != W", _multi, lambda c, g: _unequal(_spatial(c, g)))],
    "combinations": [
        ("same + stride > 1", _any, lambda c, g: g.padding == "same" and max(g.strides) > 1),
        ("same + stride > 1 + odd length", _any,
         lambda c, g: g.padding == "same" and any(s > 1 and n % 2 for s, n in zip(g.strides, _spatial(c, g)))),
        ("same + even kernel", _any, lambda c, g: g.padding == "same" and any(k % 2 == 0 for k in g.kernel_size)),
        ("same + dilation > 1", _any, lambda c, g: g.padding == "same" and max(g.dilation) > 1),
        ("same + kernel 1 + stride > 1", _any, lambda c, g: g.padding == "same"
         and any(k == 1 and s > 1 for k, s in zip(g.kernel_size, g.strides))),
        ("stride > 1 + dilation > 1", _any, lambda c, g: max(g.strides) > 1 and max(g.dilation) > 1),
        ("causal + dilation > 1", lambda k: "causal" in k.paddings,
         lambda c, g: g.padding == "causal" and max(g.dilation) > 1),
        ("channels_first + stride > 1", _any, lambda c, g: g.channels_first and max(g.strides) > 1),
        ("bias + non-linear activation", _any, lambda c, g: g.use_bias and g.activation != "linear"),
    ],
}


def coverage_table(cases: list[Case]) -> dict[str, dict[str, Any]]:
    """Per layer kind: {"cases": n, "parameters": [{parameter, values: {value: count}, buckets: {bucket: count},
    missing: [bucket]}]}. A bucket is a value (or a combination) that ports get wrong; missing ones have no case."""
    table: dict[str, dict[str, Any]] = {}
    for name, kind in LAYERS.items():
        mine = [(c, c.geometry) for c in cases if c.layer == name and not c.impossible]   # runnable ones only
        rows = []
        for param, buckets in BUCKETS.items():
            value_of = VALUES.get(param)
            if value_of is not None and not value_of[1](kind):
                continue
            values = Counter(str(value_of[0](c, g)) for c, g in mine) if value_of else Counter()
            counts = {b: sum(1 for c, g in mine if pred(c, g)) for b, applies, pred in buckets if applies(kind)}
            rows.append({"parameter": param, "values": dict(sorted(values.items(), key=lambda kv: -kv[1])),
                         "buckets": counts, "missing": [b for b, n in counts.items() if n == 0]})
        table[name] = {"cases": len(mine), "parameters": rows}
    return table


def format_coverage(table: dict[str, dict[str, Any]], missing_only: bool = False) -> str:
    lines = []
    total_missing = 0
    for name, entry in table.items():
        lines.append(f"{name} ({entry['cases']} cases)")
        for row in entry["parameters"]:
            total_missing += len(row["missing"])
            if missing_only and not row["missing"]:
                continue
            seen = ", ".join(f"{v} ({n})" for v, n in list(row["values"].items())[:8])
            seen += ", ..." if len(row["values"]) > 8 else ""
            buckets = ", ".join(f"{b}: {n}" for b, n in row["buckets"].items())
            miss = f"   NOT COVERED: {', '.join(row['missing'])}" if row["missing"] else ""
            lines.append(f"  {row['parameter']:<17} {buckets}{miss}")
            if seen and not missing_only:
                lines.append(f"  {'':<17} values: {seen}")
    lines.append(f"{total_missing} (layer kind, value) buckets not covered")
    return "\n".join(lines)
