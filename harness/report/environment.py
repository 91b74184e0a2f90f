"""What the numbers were computed on: versions, CPU, threads, oneDNN, GPU and TF32 state."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any, Callable

from .. import facts


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _try(fn: Callable[[], Any]) -> Any:
    # A query that a framework version lacks is recorded as null, never a crash of the report.
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


def _tensorflow() -> dict[str, Any]:
    info: dict[str, Any] = {"version": _version("tensorflow-cpu") or _version("tensorflow"), "loaded": False}
    info["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    tf = sys.modules.get("tensorflow")
    if tf is None or not hasattr(tf, "config"):
        return info
    info["loaded"] = True
    info["version"] = getattr(tf, "__version__", info["version"])

    info["onednn_enabled"] = facts.onednn()
    info["onednn_requested"] = os.environ.get(facts.REQUEST_VARIABLE)
    info["intra_op_threads"] = _try(tf.config.threading.get_intra_op_parallelism_threads)
    info["inter_op_threads"] = _try(tf.config.threading.get_inter_op_parallelism_threads)
    info["gpus"] = _try(lambda: [d.name for d in tf.config.list_physical_devices("GPU")])
    info["tf32_enabled"] = _try(tf.config.experimental.tensor_float_32_execution_enabled)
    return info


def _keras() -> dict[str, Any]:
    info: dict[str, Any] = {"version": _version("keras"), "loaded": False,
                            "KERAS_BACKEND": os.environ.get("KERAS_BACKEND")}
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        info["loaded"] = True
        info["version"] = getattr(keras, "__version__", info["version"])
        info["backend"] = _try(keras.backend.backend)
    return info


def _torch() -> dict[str, Any]:
    info: dict[str, Any] = {"version": _version("torch"), "loaded": False}
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "get_num_threads"):
        return info
    info["loaded"] = True
    info["version"] = torch.__version__
    info["threads"] = _try(torch.get_num_threads)
    info["interop_threads"] = _try(torch.get_num_interop_threads)
    info["cpu_capability"] = _try(torch.backends.cpu.get_cpu_capability)
    info["mkldnn_available"] = _try(torch.backends.mkldnn.is_available)
    info["cuda_available"] = _try(torch.cuda.is_available)
    if info["cuda_available"]:
        info["gpus"] = _try(lambda: [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
    info["matmul_allow_tf32"] = _try(lambda: bool(torch.backends.cuda.matmul.allow_tf32))
    info["cudnn_allow_tf32"] = _try(lambda: bool(torch.backends.cudnn.allow_tf32))
    info["float32_matmul_precision"] = _try(torch.get_float32_matmul_precision)
    return info


def capture() -> dict[str, Any]:
    """Versions are read from package metadata; runtime state only from frameworks this run imported."""
    import numpy as np

    affinity = _try(lambda: len(os.sched_getaffinity(0)))
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": facts.cpu_model(),
        "cpu_has": [f for f in facts.CPU_FEATURES if f in facts.cpu_flags()],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                       if k in os.environ},
        "numpy": np.__version__,
        "harness": _version("conv-equivalence-harness"),
        "tensorflow": _tensorflow(),
        "keras": _keras(),
        "torch": _torch(),
    }


def one_line(env: dict[str, Any]) -> str:
    """The short form shown at the top of the page and printed by the command."""
    tf, keras, torch = env.get("tensorflow") or {}, env.get("keras") or {}, env.get("torch") or {}
    parts = [f"Python {env.get('python')}", f"NumPy {env.get('numpy')}"]
    if tf.get("version"):
        onednn = tf.get("onednn_enabled")
        parts.append(f"TensorFlow {tf['version']}" + ("" if onednn is None else f" (oneDNN {'on' if onednn else 'off'})"))
    if keras.get("version"):
        parts.append(f"Keras {keras['version']}" + (f" ({keras['backend']})" if keras.get("backend") else ""))
    if torch.get("version"):
        parts.append(f"PyTorch {torch['version']}")
    parts.append(f"{env.get('cpu')} x{env.get('cpu_affinity') or env.get('cpu_count')}")
    return ", ".join(parts)
