"""Validating what a case checks: `check`, `grad_output`, and the facts under `expect`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..tensors.files import Layout
from .model import Case
from .tensor_specs import Fail, is_int, nested_shape, validate_tensor

CHECKS = ("forward", "backward")
EXPECT_KEYS = {"output", "output_at", "output_shape", "params", "weight_shapes", "rejected_by", "gradients"}
# What a configuration that every engine must refuse cannot have (everything but rejected_by).
OUTPUT_FACTS = EXPECT_KEYS - {"rejected_by"}


def validate_check(fail: Fail, case: Case, data: dict, shapes: dict[str, tuple[int, ...]], out: tuple[int, ...],
                    channel_axis: int, base: Path | None = None, activation: Layout | None = None) -> None:
    """`check`, `grad_output` and `expect.gradients` (harness.judge.gradients): set on ``case`` once valid."""
    check = data.get("check", ["forward"])
    if isinstance(check, str):
        check = [check]
    if not (isinstance(check, list) and check and all(c in CHECKS for c in check) and len(set(check)) == len(check)):
        raise fail("check", f"must be a list of {' and/or '.join(CHECKS)}, got {data.get('check')!r}")
    case.check = tuple(c for c in CHECKS if c in check)
    backward = "backward" in case.check
    if "grad_output" in data:
        if not backward:
            raise fail("grad_output", "is the backward check's upstream gradient: add backward to check")
        case.grad_output = data["grad_output"]
    if backward and case.impossible:
        raise fail("check", "a configuration pinned as refused has no gradients to check")
    if backward:
        case.grad_output = validate_tensor(fail, "grad_output", case.grad_output, out, channel_axis, base,
                                            activation)
    golden = case.expect.get("gradients")
    if golden is None:
        return
    if not backward:
        raise fail("expect.gradients", "golden gradients need the backward check: add backward to check")
    if not isinstance(golden, dict):
        raise fail("expect.gradients", "must be a mapping x | weight name -> nested list of numbers")
    tensors = {"x": case.input_shape, **shapes}
    for name, value in golden.items():
        if name not in tensors:
            raise fail(f"expect.gradients.{name}", f"{case.layer} has no tensor {name!r}; its tensors: "
                                                   f"{', '.join(tensors)}")
        got = nested_shape(value) if isinstance(value, list) else None
        if got != tuple(tensors[name]):
            raise fail(f"expect.gradients.{name}", f"impossible shape: the values have shape "
                                                   f"{list(got) if got else value!r}, {name} is {list(tensors[name])}")


def validate_expect(fail: Fail, expect: Any, shapes: dict[str, tuple[int, ...]], out: tuple[int, ...]) -> None:
    if not isinstance(expect, dict):
        raise fail("expect", "must be a mapping")
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        raise fail("expect." + ",".join(sorted(unknown)), f"unknown key; allowed: {', '.join(sorted(EXPECT_KEYS))}")
    if "output_shape" in expect:
        v = expect["output_shape"]
        if not (isinstance(v, list) and all(is_int(d) for d in v)):
            raise fail("expect.output_shape", f"must be a list of integers, got {v!r}")
    if "output" in expect:
        got = nested_shape(expect["output"])
        if got is None:
            raise fail("expect.output", "must be a rectangular nested list of numbers")
        if got != tuple(out):
            raise fail("expect.output", f"impossible shape: the values have shape {list(got)}, the layer's output "
                                        f"is {list(out)}")
    for i, item in enumerate(expect.get("output_at") or []):
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, list) and all(is_int(j) for j in index) and not (
                len(index) <= len(out) and all(0 <= j < n for j, n in zip(index, out))):
            raise fail(f"expect.output_at[{i}].index", f"impossible index {index} for the output shape {list(out)}")
    rejected_by = expect.get("rejected_by")
    if rejected_by is not None and not ((isinstance(rejected_by, list) and all(isinstance(e, str) for e in rejected_by))
                                        or isinstance(rejected_by, dict)):
        raise fail("expect.rejected_by", f"must be a list of engine names or a mapping engine -> registry id or "
                                         f"{{known | reason, when}}, got {rejected_by!r}")
    for i, item in enumerate(expect.get("output_at") or []):
        if not (isinstance(item, dict) and set(item) == {"index", "value"} and isinstance(item["index"], list)
                and all(is_int(j) for j in item["index"]) and nested_shape(item["value"]) is not None):
            raise fail(f"expect.output_at[{i}]", "must be {index: [leading indices], value: number or nested list}")
    params = expect.get("params")
    if params is not None and not (is_int(params) or (isinstance(params, dict)
                                                        and all(is_int(v) for v in params.values()))):
        raise fail("expect.params", f"must be an integer or a mapping engine -> integer, got {params!r}")
    ws = expect.get("weight_shapes")
    if ws is not None:
        if not isinstance(ws, dict):
            raise fail("expect.weight_shapes", "must be a mapping weight name -> shape, or engine -> that mapping")
        per_engine = all(isinstance(v, dict) for v in ws.values())
        for table in (ws.values() if per_engine else [ws]):
            for name, shape in table.items():
                if not (isinstance(shape, list) and all(is_int(d) for d in shape)):
                    raise fail(f"expect.weight_shapes.{name}", f"must be a list of integers, got {shape!r}")
        if not per_engine:
            missing = set(shapes) - set(ws)
            if missing:
                raise fail("expect.weight_shapes", f"missing weight {', '.join(sorted(missing))}: the layer has "
                                                   f"{', '.join(shapes)}")
