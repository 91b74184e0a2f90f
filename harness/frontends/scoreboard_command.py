"""The `scoreboard` subcommand: run the cases (and a fixed fuzz budget) in every installed engine, write JSON + HTML."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from .. import engines as registry
from ..cases import sharding
from ..cases.schema import Case, load_file
from ..diagnosis.diagnose import Diagnoser
from ..engines.worker import end_with_parent, end_workers_on
from ..errors import CaseError
from ..judge.runner import UNEXPECTED, Result, outcome, run_one
from ..judge.stacks import StackCase, load_suite, run_stack, select_suite
from ..report import environment
from ..report.results_json import finite
from ..report.write import write_all
from ..scoreboard import fuzzcases, installed, merge, page
from ..scoreboard.board import OUTCOMES, Board
from .cli_options import exit_code, suite_from

SCHEMA_VERSION = "1.2"   # 1.1: causes are labels of findings' ids, examples carry findings; 1.2: timing's third-party
# seconds and harness share, passes that hide a known bug counted under their cause


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `scoreboard` beyond the common ones."""
    parser.add_argument("--fuzz", type=int, default=0, metavar="N",
                        help="also run N configurations drawn by the fuzzer's strategy (the same N on every run; "
                             "written to DIR/scoreboard-fuzz.yaml, which the repro commands name)")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for scoreboard.json and scoreboard.html (default: reports)")
    parser.add_argument("--jobs", type=jobs_arg, default=1, metavar="N|auto",
                        help="run the cases in N processes (each with its own engine workers; every N-th case per "
                             "process); the scoreboard is the same as with 1. auto: one per usable core, as many as "
                             f"the available memory holds at about {ENGINE_GB} GB per engine per process")
    parser.add_argument("--shard", metavar="I/N",
                        help="run only shard I of N of the cases and the fuzz budget (a deterministic split, whole "
                             "cases; the stacks in shard 1): one job of a CI matrix, merged with --merge")
    parser.add_argument("--merge", nargs="+", metavar="SHARD/scoreboard.json",
                        help="run nothing: merge the scoreboards of a CI matrix's jobs (sharded by --engine, by "
                             "--shard, or both) into one scoreboard.json, .html and .md under --out")


# A --jobs process holds a worker per engine, each resident with its framework: 0.42 to 0.90 GB measured (15 engines,
# dtypes + depthwise cases, oneDNN on), so about 0.8 GB an engine.
ENGINE_GB = 0.8


def jobs_arg(text: str) -> int | str:
    """--jobs: a count of at least 1, or auto."""
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count of processes or auto, got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


def auto_jobs(engines: int) -> tuple[int, str]:
    """--jobs auto: one process per usable core, no more than the available memory holds (ENGINE_GB per engine per
    process); the count and why."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # no affinity on this platform
        cores = os.cpu_count() or 1
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            found = next((line for line in fh if line.startswith("MemAvailable:")), "")
        available = int(found.split()[1]) / 2**20 if found else None   # kB -> GB
    except (OSError, ValueError, IndexError):
        pass
    per_job = ENGINE_GB * max(1, engines)
    by_memory = cores if available is None else max(1, int(available // per_job))
    count = max(1, min(cores, by_memory))
    memory = "memory unknown" if available is None else f"{available:.0f} GB available / {per_job:.1f} GB a process"
    return count, f"--jobs auto: {count} ({cores} usable cores; {memory})"


def command_line(args: argparse.Namespace) -> list[str]:
    line = ["python", "-m", "harness", "scoreboard", *args.paths]
    for case in args.case or []:
        line += ["--case", case]
    for engine in args.engine or []:
        line += ["--engine", engine]
    if args.fuzz:
        line += ["--fuzz", str(args.fuzz)]
    if getattr(args, "jobs", 1) > 1:
        line += ["--jobs", str(args.jobs)]
    if getattr(args, "shard", None):
        line += ["--shard", args.shard]
    return [*line, "--out", args.out]


def _fuzz_cases(examples: int, out: Path) -> tuple[list[Case], list[CaseError], Path | None]:
    if examples <= 0:
        return [], [], None
    path = fuzzcases.write(fuzzcases.draw(examples), out)
    cases, errors = load_file(path)
    return cases, errors, path


def _progress(done: int, total: int, start: float, stream: TextIO, label: str = "") -> None:
    """A line per tenth of the work (the run is long; a log shows it moving)."""
    if total and (10 * done) // total != (10 * (done - 1)) // total:
        stream.write(f"scoreboard{label}: {done}/{total} items ({100 * done // total}%) "
                     f"{time.perf_counter() - start:.0f}s\n")
        stream.flush()


def _run_cases(cases: list[Case], engines: list[str], stream: TextIO, label: str = "") -> list[list[Result]]:
    """Every engine's result on every case, in order, failures diagnosed (their causes are the findings); the
    arrays are not kept (a scoreboard holds counts)."""
    start, total, done, out = time.perf_counter(), len(cases) * len(engines), 0, []
    diagnoser = Diagnoser()
    registry.warm(engines)   # every worker of this job starts now, together, while the first case runs in-process
    for case in cases:
        row = []
        for engine in engines:
            result = run_one(case, engine, diagnoser=diagnoser)
            result.output, result.bound, result.gradient_arrays = None, None, {}
            row.append(result)
            done += 1
            _progress(done, total, start, stream, label)
        out.append(row)
    return out


def _shard_main(paths: list[str], selected: list[str] | None, fuzz_path: str | None, specs: list[str],
                index: int, count: int) -> tuple[dict[str, list[Result]], dict[str, dict[str, Any]]]:
    """One process of --jobs: the cases of shard ``index`` of ``count`` (loaded here as the parent loaded them),
    every engine (plug-ins registered again from their specs): (case key -> its results, and from the first job
    each engine's environment, read from the workers that ran its items: the parent starts none to ask)."""
    names = [registry.register_plugin(s) if ":" in s else s for s in specs]
    cases = select_suite(load_suite(paths), selected, paths).cases   # as the parent selected them (suite_from)
    if fuzz_path:
        cases += load_file(fuzz_path)[0]
    # Every count-th case, not sharding's cost split: that model prices an item at the oracle's cost, and a
    # converter's item costs about the same whatever the case (its conversion), so equal counts balance best.
    mine = cases[index - 1::count]
    rows = _run_cases(mine, names, sys.stderr, f" [job {index}/{count}]")
    environments = {name: installed.environment_of(name) for name in names} if index == 1 else {}
    return {sharding.case_key(case): row for case, row in zip(mine, rows)}, environments


def _run_parallel(args: argparse.Namespace, cases: list[Case], engines: list[str], fuzz_path: Path | None
                  ) -> tuple[list[list[Result]], dict[str, dict[str, Any]]]:
    """The items split over --jobs processes (started fresh: a framework loaded here is not forked)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    specs = [registry.cli_spec(e) for e in engines]
    jobs = args.jobs
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_job_start)
    try:
        futures = [pool.submit(_shard_main, list(args.paths), args.case, str(fuzz_path) if fuzz_path else None,
                               specs, i, jobs) for i in range(1, jobs + 1)]
        by_key: dict[str, list[Result]] = {}
        environments: dict[str, dict[str, Any]] = {}
        for future in futures:
            rows, found = future.result()
            by_key.update(rows)
            environments = environments or found
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or a job failed: the jobs end now, with their engine workers; leaving
        # the pool by `with` would wait for every running job to finish.
        _stop_jobs(pool)
        raise
    pool.shutdown()
    return [by_key[sharding.case_key(case)] for case in cases], environments


def _job_start() -> None:
    """Each --jobs process, first: it ends with its engine workers on SIGTERM and once the scoreboard is gone;
    Ctrl-C in a terminal (its whole process group) is the scoreboard's to handle."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_workers_on((signal.SIGTERM, signal.SIGHUP), lambda signum: os._exit(128 + signum))
    end_with_parent()


def _stop_jobs(pool: Any, grace_s: float = 3.0) -> None:
    """SIGTERM the pool's processes (each kills its engine workers and exits), SIGKILL any still there after
    ``grace_s``; the pool is then shut down without waiting for its work."""
    processes = list((getattr(pool, "_processes", None) or {}).values())   # no public handle on them
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)
    pool.shutdown(wait=False, cancel_futures=True)


def _run_stacks(stacks: list[StackCase], engines: list[str]) -> dict[str, Any]:
    """Every engine's outcomes on the stacks (harness.judge.stacks.run_stack), and the unexpected ones."""
    counts = {engine: dict.fromkeys(OUTCOMES, 0) for engine in engines}
    unexpected = []
    for one in stacks:
        for engine in engines:
            result = run_stack(one, engine)
            status = outcome(result.verdict, result.xfail or None)
            counts[engine][status] += 1
            if status in UNEXPECTED:
                unexpected.append({"stack": one.id, "file": one.file, "engine": engine, "outcome": status,
                                   "message": result.message, "repro": result.repro})
    return {"count": len(stacks), "by_engine": counts if stacks else {}, "unexpected": unexpected}


def build(args: argparse.Namespace, stream: TextIO | None = None) -> dict[str, Any]:
    """Run every (case, engine) and return the scoreboard document; writes only the fuzz case file."""
    stream = stream or sys.stderr
    shard = sharding.parse(args.shard) if getattr(args, "shard", None) else None   # a typo fails before the run
    engines, missing = installed.choose(args.engine or [])
    if getattr(args, "jobs", 1) == "auto":
        args.jobs, why = auto_jobs(len(engines))
        stream.write(why + "\n")
    suite = suite_from(args)
    cases, errors = suite.cases, suite.errors
    fuzzed, fuzz_errors, fuzz_path = _fuzz_cases(args.fuzz, Path(args.out))
    if shard is not None:   # whole cases, by the same cost model as report's shards; the stacks in the first
        cases, _ = sharding.select(cases, *shard)
        fuzzed, _ = sharding.select(fuzzed, *shard)
        if shard[0] != 1:
            suite.stacks = []
        errors = errors if shard[0] == 1 else []   # an invalid case counts once, in the first shard
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    board, start = Board(engines), time.perf_counter()
    everything = [*cases, *fuzzed]
    environments: dict[str, dict[str, Any]] = {}   # per engine, where the items ran elsewhere (--jobs)
    if getattr(args, "jobs", 1) > 1 and len(everything) > 1:
        rows, environments = _run_parallel(args, everything, engines, fuzz_path)
    else:
        rows = _run_cases(everything, engines, stream)
    for case, row in zip(everything, rows):
        for result in row:
            board.add(case, result)
    stacks = _run_stacks(suite.stacks, engines)
    described = []
    for name in engines:
        engine_row = installed.describe(name, environments.get(name))
        engine_row["totals"] = board.totals(name)
        engine_row["timing"] = board.timing(name)
        described.append(engine_row)
    return {
        "schema_version": SCHEMA_VERSION, "created": created, "command": command_line(args),
        "paths": list(args.paths), "shard": getattr(args, "shard", None) or None,
        "duration_s": round(time.perf_counter() - start, 3),
        "cases": {"shipped": len(cases), "fuzz": len(fuzzed), "invalid": len(errors) + len(fuzz_errors)},
        "fuzz": {"examples": args.fuzz, "drawn": len(fuzzed), "file": str(fuzz_path)} if fuzz_path else None,
        "environment": environment.capture(),
        "engines": described, "not_installed": missing,
        "columns": board.columns(), "cells": board.as_dict(),
        # Where the files hold stacks (harness.judge.stacks): not cells, a stack being no layer kind; per engine the
        # outcomes of the stacks, and each unexpected one with its repro.
        **({"stacks": stacks} if suite.stacks else {}),
    }


def _merged(args: argparse.Namespace) -> dict[str, Any]:
    """--merge: the shards' boards joined (harness.scoreboard.merge); options that choose what to run make no sense."""
    given = [opt for opt, value in (("--case", args.case), ("--engine", args.engine), ("--shard", args.shard),
                                    ("--fuzz", args.fuzz)) if value]
    if given or list(args.paths) != ["cases"]:
        raise ValueError(f"--merge reads the shards' scoreboard.json files and runs nothing: drop "
                         f"{', '.join(given) or 'the case paths'} (each shard's run chose its cases)")
    docs = []
    for name in args.merge:
        try:
            docs.append(json.loads(Path(name).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--merge {name}: not a readable scoreboard.json ({exc})") from None
        if not isinstance(docs[-1], dict) or docs[-1].get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"--merge {name}: not a scoreboard.json of schema {SCHEMA_VERSION}")
    return merge.merge(docs, ["python", "-m", "harness", "scoreboard", "--merge", *args.merge, "--out", args.out])


def run(args: argparse.Namespace) -> int:
    """Run the cases (and --fuzz N configurations) in every installed engine; write scoreboard.json/.html under --out.

    One row per engine (versions, options), one column per layer kind x dtype and notable argument (groups > 1,
    dilation with stride, same padding, channels_first); each cell counts outcomes and groups its failures by
    diagnosed cause, with a repro command each (docs/scoreboard.md). Stacks run in every engine and are counted
    apart. Exit 1 on any unexpected outcome (fail, xpass, error) or invalid case or stack, as run and report."""
    doc = _merged(args) if getattr(args, "merge", None) else build(args)
    out = Path(args.out)
    json_path, html_path, md_path = out / "scoreboard.json", out / "scoreboard.html", out / "scoreboard.md"
    text = json.dumps(finite(doc), indent=1, allow_nan=False, default=str) + "\n"
    # every file complete in memory before any is written
    write_all({json_path: text, html_path: page.render(doc), md_path: page.markdown(doc)})
    for row in doc["engines"]:
        t = row["totals"]
        top = "; ".join(f"{c['count']} {c['cause']}" for c in t["causes"][:3])
        print(f"{row['name']:>16}: {t['pass']} pass, {t['fail']} fail, {t['xfail']} known bugs, {t['error']} error, "
              f"{t['skip']} skip, {t['rejected']} rejected" + page.timing_text(row.get("timing"), ", ")
              + (f"  [{row['versions']}]" if row["versions"] else "")
              + (f"\n{'':>18}{top}" if top else ""))
    for m in doc["not_installed"]:
        print(f"{m['engine']:>16}: {m['reason']}")
    stacks = doc.get("stacks") or {"by_engine": {}, "unexpected": []}
    for engine, counts in stacks["by_engine"].items():
        print(f"{engine:>16}: stacks: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    for item in stacks["unexpected"]:
        print(f"  stack {item['stack']} [{item['engine']}] {item['outcome']}: {item['message']}\n"
              f"    repro: {item['repro']}")
    overall = page.overall(doc)
    if overall:
        print(f"{'all engines':>16}: {overall}")
    print(f"wrote {html_path}, {json_path} and {md_path}")
    # Every unexpected outcome (fail, xpass, error) of any engine, of cases and stacks, fails the command, as run
    # and report do: CI never reads 0 for a file with a failing or invalid entry.
    bad = sum(row["totals"][o] for row in doc["engines"] for o in UNEXPECTED) + len(stacks["unexpected"])
    return exit_code(unexpected=bad, invalid=doc["cases"]["invalid"])
