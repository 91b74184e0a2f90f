"""An engine worker's loop (python -m harness.engines.worker_main SPEC): one engine, many requests, on stdin/stdout."""
from __future__ import annotations

import os
import sys
from typing import Any, BinaryIO


def _protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Take stdin and stdout for the protocol and give fd 0 and 1 to the engine's code: a stray print or a log
    line (TensorFlow writes to fd 1 from C++) lands on stderr instead of corrupting a frame, and nothing the
    engine reads from stdin can swallow a request."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return os.fdopen(proto_in, "rb"), os.fdopen(proto_out, "wb")   # buffered: each write is whole


def _exit_with_parent() -> None:
    """Exit when the harness process is gone, even while an engine call hangs: a worker is never orphaned
    (a parent killed with SIGKILL runs no atexit; the closed stdin alone is not seen until the call returns)."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _resolve(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def serve(spec: dict[str, str], stream_in: BinaryIO, stream_out: BinaryIO) -> None:
    """Answer requests until the harness closes stdin. The engine is built on the first request, not at start,
    so that importing its framework counts against that request's timeout and a failure is that item's error."""
    import traceback

    from . import protocol
    from .base import FunctionEngine

    engine = None
    _send(stream_out, protocol.pack({"op": "hello", "pid": os.getpid(), "python": sys.executable,
                                     "version": sys.version.split()[0]}, {}))
    while True:
        frame = protocol.read_frame(stream_in)
        if frame is None:
            return
        header, arrays = frame
        try:
            if engine is None:
                target = _resolve(spec["spec"])
                engine = FunctionEngine(spec["name"], target) if spec["kind"] == "function" else target()
            if header["op"] == "run":
                reply = protocol.output_frame(engine.run(protocol.request_of(header, arrays)))
            elif header["op"] == "environment":
                reply = protocol.pack({"ok": True, "environment": type(engine).environment()}, {})
            else:
                raise ValueError(f"unknown worker operation {header['op']!r}")
        except Exception as exc:  # noqa: BLE001 - every failure of a request is that request's answer
            reply = _error_reply(exc, traceback.format_exc())
        _send(stream_out, reply)


def _send(stream: BinaryIO, frame: bytes) -> None:
    stream.write(frame)
    stream.flush()


def _error_reply(exc: BaseException, trace: str) -> bytes:
    from . import protocol

    try:
        return protocol.error_frame(exc, trace)
    except TypeError as problem:   # e.g. an EngineRejected whose facts are not JSON
        return protocol.error_frame(RuntimeError(f"{type(exc).__name__}: {exc} ({problem})"), trace)


def main(argv: list[str]) -> int:
    import json

    stream_in, stream_out = _protocol_streams()
    _exit_with_parent()
    try:
        serve(json.loads(argv[1]), stream_in, stream_out)
    except BrokenPipeError:   # the harness went away mid-answer: nobody is left to tell
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
