"""Engine workers, parent side: an isolated engine runs in one long-lived child process per harness process."""
from __future__ import annotations

import atexit
import collections
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import EngineSkip
from . import protocol, stopwatch
from .base import Engine, EngineOutput, FunctionEngine, Isolation, Request
from .worker_main import watch_parent

# The directory that holds the harness package: on the worker's PYTHONPATH, so that an engine venv without the
# harness installed imports this very source. It is also the repository root, where .engines/ lives.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
ENGINES_DIR_VARIABLE = "HARNESS_ENGINES_DIR"
TRAITS = ("reference", "weight_layout", "options", "framework", "isolation", "inherits", "dtype_limits")
STDERR_LINES = 30   # the tail of a worker's stderr kept for the message of a crash or a failed start


class WorkerError(RuntimeError):
    """The worker itself failed (died, hung, broke the protocol): an error verdict for that item."""


def engines_dir() -> Path:
    """Where the engine venvs live: $HARNESS_ENGINES_DIR, else .engines/ in the repository."""
    return Path(os.environ.get(ENGINES_DIR_VARIABLE) or SOURCE_ROOT / ".engines")


class WorkerEngine(Engine):
    """An Engine whose ``run`` is answered by a child process running the real engine (``spec``: "module:Class",
    or "module:function" for a plug-in). The child starts on the first request and serves every later one; one
    that dies or hangs fails its item and is replaced on the next request."""

    def __init__(self, name: str, spec: str, *, traits: type[Engine], isolation: Isolation | None = None,
                 python: str | None = None, function: bool = False):
        self.name = name   # type: ignore[misc]  # Engine.name is a ClassVar; a worker's is its engine's
        for trait in TRAITS:   # the real engine's traits, for any reader that holds this instance
            setattr(self, trait, getattr(traits, trait))
        self.spec, self.function = spec, function
        self.limits = isolation or Isolation()
        self.python = python   # an explicit interpreter (--engine-python); else the isolation's venv, else ours
        self._proc: subprocess.Popen | None = None
        self._owner = os.getpid()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._drain: threading.Thread | None = None
        self._lock = threading.Lock()   # one request at a time: the protocol is a strict request/answer
        self._warming = False   # a warm request was sent whose answer the next exchange reads first
        _LIVE.add(self)

    def warm(self) -> None:
        """Start the worker and have it build its engine (import its framework) now, without waiting for it: the
        next request reads that answer first (what it waits for counts as its third-party seconds). Whatever goes
        wrong here (no venv, a worker that cannot start) is left for the first request to meet and report."""
        with self._lock:
            if self._owner != os.getpid():   # a forked copy: that worker is the other process's
                self._proc, self._owner = None, os.getpid()
            if self._proc is not None:
                return
            try:
                self._start()
                self._send(protocol.pack({"op": "warm"}, {}), time.monotonic() + self.limits.timeout_s)
                self._warming = True
            except Exception:  # noqa: BLE001 - the first request starts it again and reports what fails
                self._stop()

    # ------------------------------------------------------------ requests
    def run(self, request: Request) -> EngineOutput:
        with self._lock:
            header, arrays = self._exchange(protocol.request_frame(request), _describe(request))
        stopwatch.credit(header.get("third_party_s", 0.0))   # the worker's third-party seconds count here too
        if not header.get("ok"):
            protocol.raise_error(header, self.pid or 0)
        return protocol.output_of(header, arrays)

    def worker_environment(self) -> dict[str, dict[str, Any]]:
        """The engine's environment() as its worker sees it (its own venv's versions), for the report."""
        with self._lock:
            header, _ = self._exchange(protocol.pack({"op": "environment"}, {}), "environment()")
        stopwatch.credit(header.get("third_party_s", 0.0))
        if not header.get("ok"):
            protocol.raise_error(header, self.pid or 0)
        return header["environment"]

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None before the first request)."""
        return self._proc.pid if self._proc is not None and self._owner == os.getpid() else None

    def _exchange(self, frame: bytes, what: str) -> tuple[dict[str, Any], protocol.Arrays]:
        if self._owner != os.getpid():   # a forked copy of this object: that worker answers the other process
            self._proc, self._owner = None, os.getpid()
        if self._proc is not None and self._proc.poll() is not None:
            self._stop()   # died while idle (killed from outside): not this request's fault; start afresh
        if self._proc is None:
            self._start()
        deadline = time.monotonic() + self.limits.timeout_s
        try:
            if self._warming:   # the warm answer first (an error there is met again by this request)
                self._warming = False
                waiting = time.perf_counter()
                warmed, _ = self._receive(deadline)
                # Of the engine's build, only what this request waited for is in its wall time: the rest ran
                # beside the caller's other work and counts nowhere.
                stopwatch.credit(min(warmed.get("third_party_s", 0.0), time.perf_counter() - waiting))
            self._send(frame, deadline)
            return self._receive(deadline)
        except _Died:
            raise WorkerError(f"worker for {self.name} died ({self._death()}) while running {what}; the next "
                              f"request starts a fresh worker{self._tail()}") from None
        except _Garbled as exc:
            self._stop()
            raise WorkerError(f"worker for {self.name} sent an unreadable answer ({exc}) while running {what}: "
                              f"killed; the next request starts a fresh worker{self._tail()}") from None
        except _TimedOut:
            self._stop()
            raise WorkerError(f"worker for {self.name} timed out after {self.limits.timeout_s:g} s while running "
                              f"{what}: killed; the next request starts a fresh worker") from None
        except BaseException:
            self._stop()   # interrupted mid-exchange: the stream is out of step, the worker cannot be reused
            raise

    # ------------------------------------------------------------ the child process
    def executable(self) -> str:
        """The interpreter the worker runs on."""
        if self.python:
            return self.python
        if self.limits.venv:
            return str(engines_dir() / self.limits.venv / "bin" / "python")
        return sys.executable

    def _missing(self, executable: str) -> str:
        if self.python:
            return (f"engine {self.name} runs on {executable} (--engine-python {self.name}=...), which does not "
                    f"exist here")
        assert self.limits.venv is not None   # the executable is the venv's where no --engine-python names one
        return (f"engine {self.name} runs in its own venv {_shown(engines_dir() / self.limits.venv)}, which is "
                f"missing here: run `make engine-{self.limits.venv}`")

    def _environment(self, executable: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(dict(self.limits.env))   # set before the worker imports anything
        if executable == sys.executable:
            # Our own interpreter: our import path too, so that a plug-in (or a test's module) resolves as here.
            paths = [str(SOURCE_ROOT), *(p or os.getcwd() for p in sys.path)]
        else:
            # Another environment: only this harness source on top of it (and what the user set), never our
            # site-packages, whose pins are what that venv exists to avoid.
            paths = [str(SOURCE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    def _start(self) -> None:
        executable = self.executable()
        if not os.path.exists(executable):
            raise EngineSkip(self._missing(executable))
        spec = json.dumps({"name": self.name, "spec": self.spec, "kind": "function" if self.function else "class",
                           "parent": os.getpid()})   # the worker exits with its group once this pid is gone
        self._stderr.clear()
        # Its own session (process group): a timeout kills whatever it started too, and a Ctrl-C in the terminal
        # reaches the harness alone, which then stops it.
        self._proc = subprocess.Popen([executable, "-m", "harness.engines.worker_main", spec],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=self._environment(executable), start_new_session=True)
        self._owner = os.getpid()
        assert self._proc.stdin is not None   # PIPE: Popen opened it
        os.set_blocking(self._proc.stdin.fileno(), False)   # writes wait in poll, under the deadline
        self._drain = threading.Thread(target=_drain, args=(self._proc.stderr, self._stderr), daemon=True,
                                       name=f"worker-stderr-{self.name}")
        self._drain.start()
        try:
            self._receive(time.monotonic() + self.limits.timeout_s)   # its hello: it runs and speaks the protocol
        except (_Died, _TimedOut, _Garbled) as exc:
            what = (self._death() if isinstance(exc, _Died) else str(exc) if isinstance(exc, _Garbled) else
                    f"no answer in {self.limits.timeout_s:g} s")
            self._stop()
            tail = self._tail()   # (waits for the last of its stderr)
            # Its last line is mostly the exception that stopped it.
            said = next((line.strip() for line in reversed(self._stderr) if line.strip()), "")
            reason = (f"the worker for engine {self.name} on {executable} could not start "
                      f"({what}{': ' + said if said else ''})")
            if self.python or self.limits.venv:
                # A skip, in one line: the environment is not there yet, which is no verdict on the engine.
                fix = ("; the worker needs numpy (and ml_dtypes for bfloat16) in that environment" if self.python
                       else f"; rebuild its venv: run `make engine-{self.limits.venv}`")
                raise EngineSkip(reason + fix) from None
            raise WorkerError(reason + tail) from None

    def _death(self) -> str:
        """How the worker ended ("signal 11 SIGSEGV", "exit status 1"), once it has ended; reaps it."""
        proc = self._proc
        if proc is None:
            return "not running"
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._stop()
        if code is None:
            return "closed its pipe"
        if code < 0:
            try:
                return f"signal {-code} {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit status {code}"

    def _tail(self) -> str:
        if self._drain is not None:
            self._drain.join(timeout=1.0)   # the pipe closes with the process: its last lines are in
        lines = list(self._stderr)
        return ("\nlast lines of its stderr:\n" + "".join(lines)).rstrip() if lines else ""

    def _stop(self) -> None:
        """Kill the worker and everything it started (its process group), and reap it."""
        proc, self._proc = self._proc, None
        self._warming = False
        if proc is None or self._owner != os.getpid():
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the group outlives its leader's exit until reaped: pid is safe
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    close = _stop

    # ------------------------------------------------------------ frames over the pipes, under a deadline
    def _send(self, frame: bytes, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdin is not None   # started, with pipes (_start)
        fd, view = self._proc.stdin.fileno(), memoryview(frame)
        while view:
            if not _ready(fd, select.POLLOUT, deadline):
                raise _TimedOut
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise _Died from None

    def _receive(self, deadline: float) -> tuple[dict[str, Any], protocol.Arrays]:
        try:
            head_len, payload_len = protocol.lengths(self._read(protocol.PREFIX.size, deadline))
            return protocol.unpack(self._read(head_len, deadline), self._read(payload_len, deadline))
        except (_Died, _TimedOut):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the bytes were, the stream is out of step
            raise _Garbled(f"{type(exc).__name__}: {exc}") from None

    def _read(self, n: int, deadline: float) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None   # started, with pipes (_start)
        fd, parts, got = self._proc.stdout.fileno(), [], 0
        while got < n:
            if not _ready(fd, select.POLLIN, deadline):
                raise _TimedOut
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise _Died
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)


class _Died(Exception):
    """The worker's end of a pipe closed mid-exchange."""


class _Garbled(Exception):
    """The worker's answer could not be decoded."""


class _TimedOut(Exception):
    """The deadline passed with the exchange unfinished."""


def _ready(fd: int, event: int, deadline: float) -> bool:
    """Whether ``fd`` is ready (or closed: then the read or write says so) before the deadline. poll, not
    select: a long run may hold file descriptors past select's limit of 1024."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


def _drain(stream, tail: collections.deque) -> None:
    # Read the worker's stderr as it comes (a full pipe would block it), keeping the last lines.
    for line in iter(stream.readline, b""):
        tail.append(line.decode("utf-8", "replace"))
    stream.close()


def _describe(request: Request) -> str:
    config = json.dumps(request.config, default=str, separators=(",", ":"))
    return f"{request.layer} {config} on input {list(request.inputs.x.shape)} {request.dtype}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(SOURCE_ROOT))
    except ValueError:
        return str(path)


# Every worker this process started is killed at exit: none outlives the harness.
_LIVE: weakref.WeakSet[WorkerEngine] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for worker in list(_LIVE):
        worker.close()


def kill_workers() -> None:
    """SIGKILL now every worker this process started, with whatever each started (its process group), without
    reaping: safe in a signal handler, and in a thread while the main thread hangs in a call."""
    for worker in list(_LIVE):
        proc = worker._proc
        if proc is not None and proc.returncode is None and worker._owner == os.getpid():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def end_with_parent() -> None:
    """In a process the harness starts that starts workers of its own (a scoreboard job, an xdist worker): once
    its parent is gone, its workers are killed and it exits, whatever its main thread is doing."""
    watch_parent(kill_workers)


def raise_exit(signum: int) -> None:
    """Unwind (finally blocks, atexit) with the exit status of a process the signal ended."""
    raise SystemExit(128 + signum)


def die_of(signum: int) -> None:
    """End as the signal's default action would have (the status a caller reads is unchanged)."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def end_workers_on(signals: tuple[int, ...], then: Callable[[int], None]) -> None:
    """On each of ``signals`` not already handled by someone else, kill this process's workers first (a default
    action runs no atexit: they would outlive it), then ``then(signum)``. Main thread only (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        kill_workers()
        then(signum)

    for signum in signals:
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, handler)


def warm_all(workers: list[WorkerEngine]) -> None:
    """Start the workers together, each importing its framework while the others do and while the caller goes on
    (WorkerEngine.warm): a job pays their start-ups at once, not one at each engine's first item."""
    from concurrent.futures import ThreadPoolExecutor

    if workers:
        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            list(pool.map(WorkerEngine.warm, workers))


def for_class(name: str, spec: str, cls: type[Engine]) -> WorkerEngine:
    """The worker proxy of a built-in engine class that declares ``isolation``."""
    return WorkerEngine(name, spec, traits=cls, isolation=cls.isolation)


def for_plugin(name: str, spec: str, python: str) -> WorkerEngine:
    """The worker proxy of a plug-in function run on another interpreter (--engine-python NAME=PATH)."""
    return WorkerEngine(name, spec, traits=FunctionEngine, python=python, function=True)
