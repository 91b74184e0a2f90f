"""pytest's item for a `models:` entry: the Keras model against its PyTorch port, as `python -m harness diff`."""
from __future__ import annotations

import pytest

from ..cases.model_entries import ModelEntry
from ..models.render import render_text
from .model_session import diff_model


class ModelDiffFailed(Exception):
    """A `models:` entry whose port fails at least one mapped layer: the diff's lines are the report."""


class ModelItem(pytest.Item):
    """One `models:` entry: the Keras model against its PyTorch port, every mapped layer judged
    (harness.frontends.model_session.diff_model, as `python -m harness diff`); fails when any layer does."""

    def __init__(self, *, entry: ModelEntry, **kwargs):
        super().__init__(**kwargs)
        self.entry = entry

    def runtest(self) -> None:
        e = self.entry
        diffed = diff_model(e.keras, e.port, torch_weights=e.torch_weights, transfer_weights=e.transfer_weights,
                            overrides=e.overrides, input_size=e.input_size, seed=e.seed, image=e.image,
                            batch=e.batch, torch_layout=e.torch_layout)
        self.user_properties.append(("culprit", diffed.result.culprit))
        if not diffed.result.passed:
            raise ModelDiffFailed(render_text(diffed.result, diffed.model, e.port))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ModelDiffFailed):
            lines = str(excinfo.value).splitlines()
            return "\n".join([lines[0], *(ln for ln in lines[1:] if not ln.startswith("  "))])
        if isinstance(excinfo.value, ValueError):   # the model or port cannot be loaded as named: one line
            return f"invalid model entry {self.entry.file}::{self.entry.id}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.entry.id} [diff]"
