"""A model layer's disagreement matched against the known-behaviour registry (harness.known), as the single-layer
case of the same layer would be: the layer's kind, configuration, input shape and dtype as a Case."""
from __future__ import annotations

from typing import Any

from ..cases.model import Case
from ..known import facts
from ..known.registry import Known, matching_bug
from ..layers.families import LAYERS
from .mapping import Unit


def as_case(unit: Unit, dtype: str) -> Case | None:
    """The unit's Keras layer as a case of the conv families (None for another kind, or a configuration the harness
    does not express): the keys its kind accepts, activation by name (the registry's conditions read those)."""
    head = unit.head
    kind = LAYERS.get(head.kind)
    if kind is None or head.is_op or not head.inputs:
        return None
    config: dict[str, Any] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in head.config.items()
                              if k in kind.config_keys}
    if config.get("activation") == "linear":
        config["activation"] = None
    if isinstance(config.get("padding"), str):
        config["padding"] = config["padding"].lower()
    case = Case(id=head.name, file="<model>", layer=head.kind, input_shape=tuple(head.inputs[0].shape),
                config=config, dtype=dtype)
    try:
        _ = case.geometry   # a configuration the harness cannot normalise has no case
    except (ValueError, KeyError, TypeError):
        return None
    return case


def known_bug(unit: Unit, engine: str, dtype: str) -> Known | None:
    """The registry's bug of ``engine`` (keras for Keras's own output, torch for a torch port's module) whose
    condition holds in this process and which the layer triggers; None where none does. Entries that need a
    diagnosed mutant, or a run fact of an engine's single-layer run (keras_xla, ...), do not match here."""
    case = as_case(unit, dtype)
    if case is None:
        return None
    seen = {**facts.process_facts(), "dtype": dtype, "layer": case.layer}
    try:
        return matching_bug(engine, case, seen, None)
    except Exception:  # noqa: BLE001 - a lookup that fails names nothing; the verdict stands without it
        return None
