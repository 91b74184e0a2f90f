"""An engine worker's loop (python -m harness.engines.worker_main SPEC): one engine, many requests, on stdin/stdout."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from . import protocol, stopwatch
from .base import FunctionEngine


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


def watch_parent(before_exit: Callable[[], None], harness: int | None = None) -> None:
    """Exit (status 70) once the process that started this one is gone, even while the main thread hangs in an
    engine call, calling ``before_exit`` first: a parent killed with SIGKILL runs no cleanup, and a closed pipe
    is not seen until a call returns. ``harness``: the pid of the harness process, where the parent may be a
    wrapper between the two (a venv's python that is a shell script); it must be running too."""
    import threading
    import time

    parent = os.getppid()

    def running(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def watch() -> None:
        while os.getppid() == parent and (harness is None or running(harness)):
            time.sleep(0.25)
        try:
            before_exit()
        finally:
            os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def kill_own_group() -> None:
    """SIGKILL this worker's process group: the worker and whatever its engine started (a converter's tool, a
    compiler). Only where the worker leads its group (the harness starts it in a session of its own): never the
    group of whoever ran it by hand."""
    import signal

    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)


def _end_group_on_signals() -> None:
    # A signal sent to the worker alone (SIGTERM from a supervisor, SIGINT by hand) would end it and orphan its
    # children: it ends them all instead.
    import signal

    def end(signum: int, frame: Any) -> None:
        kill_own_group()
        os._exit(128 + signum)   # not its group's leader: end as the signal would have ended it

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, end)


def _resolve(spec: str) -> Any:
    """The plug-in ``MODULE:ATTR`` or ``PATH.py:ATTR`` names, found as the parent process finds it."""
    from . import resolve  # the package is loaded already (this module is in it); no cycle at import time

    return resolve(spec)


def serve(spec: dict[str, str], stream_in: BinaryIO, stream_out: BinaryIO) -> None:
    """Answer requests until the harness closes stdin. The engine is built on the first request, not at start,
    so that importing its framework counts against that request's timeout and a failure is that item's error."""
    import traceback

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
                with stopwatch.third_party():   # the engine's imports: its framework's, the converter's
                    engine = FunctionEngine(spec["name"], target) if spec["kind"] == "function" else target()
            if header["op"] == "run":
                out = engine.run(protocol.request_of(header, arrays))
                reply = protocol.output_frame(out, third_party_s=stopwatch.take())
            elif header["op"] == "warm":   # the engine is built (its framework imported): nothing else to do
                reply = protocol.pack({"ok": True, "third_party_s": stopwatch.take()}, {})
            elif header["op"] == "environment":
                reply = protocol.pack({"ok": True, "environment": type(engine).environment(),
                                       "third_party_s": stopwatch.take()}, {})
            else:
                raise ValueError(f"unknown worker operation {header['op']!r}")
        except Exception as exc:  # noqa: BLE001 - every failure of a request is that request's answer
            # Every answer carries the seconds its engine spent in third-party calls (the parent credits them).
            reply = _error_reply(exc, traceback.format_exc(), stopwatch.take())
        _send(stream_out, reply)


def _send(stream: BinaryIO, frame: bytes) -> None:
    stream.write(frame)
    stream.flush()


def _error_reply(exc: BaseException, trace: str, third_party_s: float) -> bytes:
    try:
        return protocol.error_frame(exc, trace, third_party_s=third_party_s)
    except TypeError as problem:   # e.g. an EngineRejected whose facts are not JSON
        return protocol.error_frame(RuntimeError(f"{type(exc).__name__}: {exc} ({problem})"), trace,
                                    third_party_s=third_party_s)


def main(argv: list[str]) -> int:
    import json

    spec = json.loads(argv[1])
    stream_in, stream_out = _protocol_streams()
    _end_group_on_signals()
    watch_parent(kill_own_group, spec.get("parent"))   # the harness gone: its worker and the worker's children go
    try:
        serve(spec, stream_in, stream_out)
    except BrokenPipeError:   # the harness went away mid-answer: nobody is left to tell
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
