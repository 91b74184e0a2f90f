"""Atomic writing: every file is rendered and written to a temporary name first, then moved into place."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_all(files: dict[Path, str]) -> None:
    """Write every text first; only when all are on disk, os.replace each over its target.

    A failure while writing (disk full, an exception, Ctrl-C) leaves the previous files untouched and removes
    the temporaries; os.replace is atomic per file, so a reader never sees a half-written page.
    """
    temps: dict[Path, str] = {}
    try:
        for target, text in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temps[target] = tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a report is as readable as any file
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        for target, tmp in temps.items():
            os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
