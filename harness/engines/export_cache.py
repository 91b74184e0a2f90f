"""Keras's export of a request's layer (ONNX, OpenVINO IR) done once for the engines that read the same file."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from .. import keras_layer
from . import keras_graph
from .base import Request

# Exports older than this are removed (every PRUNE_EVERY exports of a worker): the folder stays bounded over long
# fuzz campaigns, and no worker is still reading an export that old (every engine reads it within its own item).
MAX_AGE_S = 3600.0
PRUNE_EVERY = 200
_made = [0]   # exports this worker made
_ROOT: dict[str, str] = {}   # the folder of this process's exports (_root), once found

# What else decides an export: the versions of the venv that exports it (engines/onnx.txt: Keras, TensorFlow,
# tf2onnx, OpenVINO) and the harness code that builds and exports the model. Computed once per worker.
_DECIDED_BY: dict[str, Any] = {}


def _decided_by() -> Any:
    if not _DECIDED_BY:
        code = hashlib.sha256()
        for path in (keras_layer.__file__, keras_graph.__file__):   # keras_model, export, build_keras_layer
            with open(str(path), "rb") as fh:
                code.update(fh.read())
        _DECIDED_BY.update(versions=keras_graph.versions("keras", "tensorflow-cpu", "tf2onnx", "onnx", "openvino"),
                           code=code.hexdigest())
    return _DECIDED_BY


def key(request: Request, fmt: str) -> str:
    """A digest of everything that decides Keras's ``fmt`` export of the request: the layer, its configuration,
    dtype, input shape and weights, the exporting venv's versions and the harness code that builds the model."""
    digest = hashlib.sha256(json.dumps([fmt, request.layer, request.config, request.dtype,
                                        list(request.inputs.x.shape), _decided_by()],
                                       sort_keys=True, default=str).encode())
    for name, w in sorted(request.inputs.weights.items()):
        digest.update(f"{name}{w.dtype}{w.shape}".encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()[:32]


def exported(model: Any, request: Request, fmt: str, filename: str) -> str:
    """The path of the file (``filename``, its companions beside it: the IR's .bin) that ``model.export(format=fmt)``
    writes for the request, exported once for every engine that reads the same export (openvino and openvino-f32
    compile one IR for two precisions; keras-onnx and onnx2torch read one ONNX): kept in a folder of the temporary
    directory named by key(), written under a private name and renamed into place whole, so that a worker reads a
    complete export or makes its own. A refusal of the exporter raises, as export() does, and leaves nothing."""
    root = _root()
    folder = os.path.join(root, key(request, fmt))
    path = os.path.join(folder, filename)
    if os.path.isfile(path):
        try:
            os.utime(folder)   # in use: young again, so that _prune leaves it
        except OSError:   # pruned between the two calls: export it again
            pass
        else:
            return path
    _prune(root)
    tmp = tempfile.mkdtemp(prefix="export-", dir=root)
    try:
        keras_graph.export(model, os.path.join(tmp, filename), fmt, request)
        try:
            os.rename(tmp, folder)
        except OSError:   # another worker renamed the same export into place first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _root() -> str:
    """The folder the exports live in: this user's private one in the temporary directory, shared by its workers;
    where someone else made a folder under that name, one of this process's own (nothing shared through theirs),
    made once and removed when the process ends."""
    if "root" not in _ROOT:
        root = os.path.join(tempfile.gettempdir(), f"harness-keras-exports-{os.getuid()}")
        os.makedirs(root, mode=0o700, exist_ok=True)
        if os.stat(root).st_uid != os.getuid():
            import atexit

            root = tempfile.mkdtemp(prefix="harness-keras-exports-")
            atexit.register(shutil.rmtree, root, True)
        _ROOT["root"] = root
    return _ROOT["root"]


def _prune(root: str) -> None:
    """Remove the exports in ``root`` older than MAX_AGE_S, once every PRUNE_EVERY exports of this worker."""
    _made[0] += 1
    if _made[0] % PRUNE_EVERY != 1:
        return
    cutoff = time.time() - MAX_AGE_S
    with os.scandir(root) as entries:
        old = [e.path for e in entries if e.is_dir(follow_symlinks=False) and e.stat().st_mtime < cutoff]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
