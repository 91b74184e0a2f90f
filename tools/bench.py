"""`make bench`: what the harness costs on this machine, measured in one run, each figure against its goal.

    python tools/bench.py [--quick] [--no-suite] [--repeat N] [--json FILE]

(a) harness overhead: `python -m harness run` on a fixed subset of the shipped cases against a bare script
    (tools/bench_bare.py) making the same Keras and PyTorch calls on the same inputs; goal <= 1.25.
(a2) the same for `pytest -n 0` on the same cases (the plug-in's items, the same engines); goal <= 1.2.
(b) the float64 oracle against torch float64 conv2d (with groups) on the big worked example
    (cases/worked_examples.yaml depthwise-big-same) and on a large SeparableConv2D and a large Conv2D defined here:
    their calls interleaved in one process (best of up to 3 rounds), and each one's peak memory in a fresh process
    of its own; goal <= 2.
(c) `pytest cases -n 2` (as `make test` runs the cases) against `-n 0` on the shipped suite, every engine; goal
    <= 0.6 on 2 cores (--no-suite skips it: the suite takes minutes).
(d) collecting the cases and the tests (pytest --collect-only), without importing a framework; goal < 1 s. As
    any run after the first sees it (bytecode cached, in a private folder); also printed as this environment
    runs it (where PYTHONDONTWRITEBYTECODE=1 every run compiles and rewrites every test and harness module).
(e) writing the report (results.json + index.html) of 1000 cases: the subset's real records and pictures repeated
    to 1000 cases, as tests/report/test_report_browser.py does; goal < 15 s and a page < 10 MB.
(f) peak memory of the whole suite: the largest process of the runs of (c) (maxrss), and the most that the run's
    processes held together (sampled).

Every figure is printed with the command it came from. Wall times are medians of --repeat runs, alternated between
the two sides of a ratio; on a machine shared with other jobs they are noisy (the load average is printed).
--quick is a smoke test (tests/test_bench.py): a few small cases, small layers, torch only, no suite run, the
cases alone collected.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# Run as a script (`python tools/bench.py`): its folder is on sys.path, and each figure is a module beside it.
from bench_common import Figure, format_figure, load, machine
from bench_oracle import measure_memory, measure_times, oracle_vs_torch
from bench_overhead import overhead
from bench_report import report_1000
from bench_suite import collection, suite


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_measure":   # a fresh process of (b): _measure times|memory IMPL[,IMPL...] SPEC
        what, impls, spec = argv[1], argv[2], json.loads(argv[3])
        print(json.dumps([measure_times(impls.split(","), one) for one in spec] if what == "times"
                         else measure_memory(impls, spec)))
        return 0
    p = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: few small cases, torch only, no suite run")
    p.add_argument("--no-suite", action="store_true", help="skip (c) and (f): the shipped suite twice (minutes)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per command, alternated; medians")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--only", metavar="LETTERS", default="abcdef", help="only these figures, e.g. --only ad")
    args = p.parse_args(argv)
    started = time.perf_counter()
    print(f"make bench{' --quick (a smoke test: small sizes, not the figures)' if args.quick else ''} on {machine()}; "
          f"load average {load()} at the start "
          f"(other jobs on this machine make every wall time noisy); medians of {args.repeat} run(s)", flush=True)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        folder = Path(tmp)
        steps = [("a", lambda: overhead(args.quick, args.repeat, folder)),
                 ("b", lambda: oracle_vs_torch(args.quick, args.repeat)),
                 ("cf", lambda: suite(args.repeat)),
                 ("d", lambda: [collection(args.repeat, args.quick)]),
                 ("e", lambda: [report_1000(args.quick, folder)])]
        for keys, step in steps:
            if not set(keys) & set(args.only):
                continue
            if keys == "cf" and (args.quick or args.no_suite):
                print("(c), (f) skipped (--quick or --no-suite): they run the shipped suite twice", flush=True)
                continue
            for f in step():
                if f.key[0] in args.only:   # (a2) with (a)
                    figures.append(f)
                    print(format_figure(f), flush=True)
    missed = [f"({f.key})" for f in figures if f.met is False]
    print(f"bench took {time.perf_counter() - started:.0f} s; load average {load()} at the end; "
          + (f"goals missed: {' '.join(missed)}" if missed else "every goal measured is met"))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "quick": args.quick, "repeat": args.repeat,
                                               "figures": [f.__dict__ for f in figures]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
