"""What the numbers were computed on: versions, CPU, threads, oneDNN, GPU and TF32 state."""
from __future__ import annotations

import os
import platform
from typing import Any

from .. import engines
from ..known import facts


def _engines() -> dict[str, Any]:
    """Each built-in engine's own environment facts (framework name -> facts), in registry order."""
    found: dict[str, Any] = {}
    for name in engines.BUILTIN:
        found.update(engines.engine_class(name).environment())
    return found


def capture() -> dict[str, Any]:
    """Versions are read from package metadata; runtime state only from frameworks this run imported."""
    import numpy as np

    affinity = facts.attempt(lambda: len(os.sched_getaffinity(0)))
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
        "harness": facts.dist_version("conv-equivalence-harness"),
        **_engines(),
    }


def one_line(env: dict[str, Any]) -> str:
    """The short form shown at the top of the page and printed by the command."""
    tf, keras, torch = env.get("tensorflow") or {}, env.get("keras") or {}, env.get("torch") or {}
    parts = [f"Python {env.get('python')}", f"NumPy {env.get('numpy')}"]
    if tf.get("version"):
        onednn = tf.get("onednn_enabled")
        onednn_text = "" if onednn is None else f" (oneDNN {'on' if onednn else 'off'})"
        parts.append(f"TensorFlow {tf['version']}{onednn_text}")
    if keras.get("version"):
        parts.append(f"Keras {keras['version']}" + (f" ({keras['backend']})" if keras.get("backend") else ""))
    if torch.get("version"):
        parts.append(f"PyTorch {torch['version']}")
    parts.append(f"{env.get('cpu')} x{env.get('cpu_affinity') or env.get('cpu_count')}")
    return ", ".join(parts)
