"""The model diff names the registry's known bug where Keras's own output is off the oracle: a layer of the model is
looked up as the single-layer case of the same layer would be (harness.models.known_match). The layer here is
TensorFlow's oneDNN column-stride bug (tf-onednn-conv2d-column-stride-past-width-wrong: one input channel, batch 2,
strides (1, 3) past a width of 2, an output one column wide): where oneDNN runs, Keras fails and the cause names the
entry; where it does not, the layer passes. keras and torch are imported inside the tests."""
from __future__ import annotations

import numpy as np
from testkit import hand_ports

ENTRY = "tf-onednn-conv2d-column-stride-past-width-wrong"


def _model_and_port() -> tuple[object, object, np.ndarray]:
    hand_ports()   # skips without torch or keras; sets the Keras backend
    import keras
    import torch

    inp = keras.Input((3, 2, 1))
    out = keras.layers.Conv2D(1, 2, strides=(1, 3), use_bias=False, name="col")(inp)
    model = keras.Model(inp, out)
    model.layers[1].set_weights([np.ones((2, 2, 1, 1), np.float32)])
    port = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 2, stride=(1, 3), bias=False))
    with torch.no_grad():
        port[0].weight.fill_(1.0)
    return model, port, np.arange(12, dtype=np.float32).reshape(2, 3, 2, 1) - 5


def test_a_layer_is_looked_up_as_its_single_layer_case() -> None:
    from harness.keras_layer import import_keras
    from harness.known import facts
    from harness.models.capture import capture_keras
    from harness.models.known_match import as_case, known_bug
    from harness.models.mapping import Unit

    model, _, x = _model_and_port()
    (node,) = capture_keras(import_keras(), model, x)
    unit = Unit([node], "conv")
    case = as_case(unit, "float32")
    assert case is not None and case.layer == "Conv2D" and case.input_shape == (2, 3, 2, 1), case
    assert case.geometry.strides == (1, 3) and case.config["padding"] == "valid", case.config
    bug = known_bug(unit, "keras", "float32")
    want = ENTRY if facts.process_facts()["onednn"] else None
    assert (bug.id if bug else None) == want, f"known_bug={bug.id if bug else None}, but should be {want}"


def test_keras_off_the_oracle_names_the_registry_entry_or_passes() -> None:
    from harness import api

    model, port, x = _model_and_port()
    (d,) = api.diff(model, port, x).layers
    assert d.isolated is not None and d.isolated <= 1.0, d   # the port is right on either path
    if d.keras is not None and d.keras > 1.0:
        assert d.verdict == "fail" and f"the registry's {ENTRY}" in d.cause, d.cause
    else:
        assert d.verdict == "pass", (d.verdict, d.cause)


def _off_port() -> tuple[object, object, np.ndarray]:
    """The Keras layer above, and a port whose Conv2d has its weights and arguments but adds 1e-3 in its forward:
    a numerics-only failure (the kind a framework bug gives)."""
    model, port, x = _model_and_port()
    import torch

    class OffConv(torch.nn.Conv2d):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return super().forward(t) + 1e-3

    off = OffConv(1, 1, 2, stride=(1, 3), bias=False)
    with torch.no_grad():
        off.weight.fill_(1.0)
    return model, torch.nn.Sequential(off), x


def test_a_ports_numerics_only_failure_is_looked_up_for_torch(monkeypatch) -> None:
    """The port's module off with matching weights and configuration: looked up as the layer's single-layer case for
    torch. No torch entry holds on this layer (the cause says so); where one does (the lookup patched to find one),
    the cause names it and a known_bug issue holds its id."""
    from harness import api
    from harness.known.registry import REGISTRY
    from harness.models import diff as model_diff

    model, port, x = _off_port()
    (d,) = api.diff(model, port, x).layers
    assert d.verdict == "fail" and d.isolated is not None and d.isolated > 1.0, d
    assert d.cause.startswith("numerics: weights and configuration match"), d.cause
    assert "no registered torch bug holds here" in d.cause and not [i for i in d.issues if i.kind == "known_bug"], d
    asked: list[str] = []
    entry = REGISTRY["torch-bf16-strided-dilated-conv2d-wrong"]

    def found(unit: object, engine: str, dtype: str) -> object:
        asked.append(engine)
        return entry if engine == "torch" else None

    monkeypatch.setattr(model_diff, "known_bug", found)
    (d,) = api.diff(model, port, x).layers
    assert "torch" in asked, asked
    assert f"the registry's {entry.id}" in d.cause and "holds here" in d.cause, d.cause
    assert [(i.kind, i.id) for i in d.issues if i.kind == "known_bug"] == [("known_bug", entry.id)], d.issues
