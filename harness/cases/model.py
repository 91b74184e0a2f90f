"""The Case: one runnable point of a case file (a YAML entry with defaults merged, one point of its sweep)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ..known.registry import Expectation
from ..layers.geometry import Geometry, geometry


@dataclass
class Case:
    """One runnable case: a YAML entry with defaults merged and one point of its sweep."""

    id: str                      # unique id, with swept values, e.g. "k3(strides=2,padding=same)"
    file: str                    # path of the YAML file
    layer: str
    input_shape: tuple[int, ...]
    config: dict[str, Any]
    dtype: str = "float32"
    seed: int = 0
    input: Any = "normal"
    weights: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)   # the values this point of the sweep set
    engine_options: dict[str, dict] = field(default_factory=dict)
    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, Expectation] = field(default_factory=dict)        # engine -> known bug it must still show
    rejected_by: dict[str, Expectation] = field(default_factory=dict)  # engine -> refusal it must still show
    source: dict[str, Any] = field(default_factory=dict)  # the entry as written (before sweep), for reports
    # Why the configuration cannot run (zero filters, a kernel that does not fit, ...): allowed only in a case
    # that pins the refusals (expect.rejected_by); empty for every other case.
    impossible: str = ""
    line: int | None = None
    check: tuple[str, ...] = ("forward",)   # the checks its items run (harness.judge.gradients for "backward")
    grad_output: Any = "normal"              # the backward check's upstream gradient (a tensor spec)

    @functools.cached_property
    def geometry(self) -> Geometry:
        return geometry(self.layer, self.config, self.input_shape)
