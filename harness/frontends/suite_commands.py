"""Subcommands `mutants`, `lint`, `fuzz` and `coverage` of python -m harness."""
from __future__ import annotations

import argparse
import os

from .. import engines as engine_registry
from ..audit.coverage import coverage_table, format_coverage
from ..audit.lint import format_lint, lint
from ..cases.selection import select_engines
from ..cases.sharding import parse
from ..mutation import mutants, score
from .cli_options import exit_code, suite_from


def _controls(specs: list[str]) -> list[str]:
    """--engine for `mutants`: the correct ports that must pass every case (default: both NumPy controls, torch)."""
    if not specs:
        return list(score.DEFAULT_CONTROLS)
    out = []
    for spec in specs:
        if spec in mutants.CONTROLS or spec in engine_registry.BUILTIN:
            out.append(spec)
        else:
            out.extend(n for n in select_engines([spec]) if n not in engine_registry.BUILTIN)
    return out


def add_mutants_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `mutants` beyond the common ones."""
    p.add_argument("--mutant", action="append",
                   help="only this mutant, forward or backward (repeatable; default: the whole catalogue, the "
                        "backward mutants on the backward items of the cases that ask for the backward check)")
    p.add_argument("--first", action="store_true",
                   help="stop each mutant at its first kill per layer kind (fast; lists one killer per kind)")
    p.add_argument("--killers", type=int, default=3, metavar="N", help="killing case ids shown per mutant")
    p.add_argument("--list", action="store_true", help="list the catalogue (name, layer kinds, the bug) and exit")


def run_mutants(args: argparse.Namespace) -> int:
    """Run every deliberately broken port over the cases; print the mutation score and each mutant's killers."""
    if args.list:
        for m in mutants.CATALOGUE.values():
            kinds = "/".join(m.families) + ("" if m.ranks is None else " " + "/".join(f"{r}D" for r in m.ranks))
            check = "backward" if m.name in mutants.BACKWARD_MUTANTS else "forward"
            print(f"{m.name:38} {check:8} {kinds:28} {m.bug}" + (f" ({m.source})" if m.source else ""))
        return 0
    unknown = sorted(set(args.mutant or []) - set(mutants.CATALOGUE))
    if unknown:
        raise ValueError(f"unknown mutant {', '.join(unknown)}; known: {', '.join(mutants.CATALOGUE)}")
    suite = suite_from(args)
    controls = _controls(args.engine)
    # A stack kills a mutant applied to one of its layers where it fails naming that layer; the controls run it.
    s = score.sweep(suite.cases, args.mutant, controls, first_only=args.first, stacks=suite.stacks)
    print(score.format_score(s, args.killers))
    if not suite.items:
        print(f"mutants: no case or stack to score in {' '.join(map(str, args.paths))}")
    return exit_code(unexpected=len(s.survivors) + len(s.control_failures) + len(s.misnamed),
                     invalid=len(suite.errors), judged=len(suite.items))


def add_lint_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `lint` beyond the common ones."""
    p.add_argument("--weak-only", action="store_true", help="print only the weak cases")


def run_lint(args: argparse.Namespace) -> int:
    """Per case and stack, the mutants it kills; flag weak ones (kill none and carry no golden output)."""
    suite = suite_from(args)
    entries, s = lint(suite.cases, suite.stacks)
    print(format_lint(entries, s, weak_only=args.weak_only))
    if not suite.items:
        print(f"lint: no case or stack to lint in {' '.join(map(str, args.paths))}")
    return exit_code(unexpected=sum(e.weak for e in entries) + len(s.misnamed), invalid=len(suite.errors),
                     judged=len(suite.items))


def add_fuzz_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `fuzz` beyond the common ones."""
    p.add_argument("--examples", type=int, default=200, metavar="N", help="configurations to try (default 200)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed of the first worker (default 0)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: 2, or 1 on one core)")
    p.add_argument("--layer", action="append", metavar="NAME",
                   help="only this layer kind, e.g. SeparableConv2D (repeatable; default: every kind)")
    p.add_argument("--dtype", action="append", metavar="NAME",
                   help="only this dtype: float32, float64, float16 or bfloat16 (repeatable; default: all)")
    p.add_argument("--shard", metavar="I/N",
                   help="run shard I of N of the campaign: its share of --examples, with seeds no other shard uses "
                        "(N jobs with I = 1..N run the whole budget once)")
    p.add_argument("--out", metavar="FILE.json",
                   help="also write the summary as JSON to FILE (what --merge reads)")
    p.add_argument("--merge", nargs="+", metavar="FILE.json",
                   help="run nothing: merge the summaries of every shard of a campaign (written with --shard and "
                        "--out) and print the campaign's summary")


def run_fuzz(args: argparse.Namespace) -> int:
    """Property-based configurations in every engine against the oracle; false alarms are expected to be zero."""
    import json
    from pathlib import Path

    # The fuzzer's front door loads hypothesis: for this subcommand only, not at every start of the CLI.
    from ..fuzz.search import Stats, filters, format_stats, merge_summaries, run, shard_budget, shard_seed, summary

    if getattr(args, "paths", ["cases"]) != ["cases"]:   # ["cases"]: the common positional's default
        raise ValueError(f"fuzz draws its own configurations and reads no case file: drop {' '.join(args.paths)} "
                         "(run, report or pytest run case files)")
    if args.merge:
        if args.shard or args.out:
            raise ValueError("--merge reads the shards' summaries and runs nothing: drop "
                             + ", ".join(o for o, v in (("--shard", args.shard), ("--out", args.out)) if v))
        stats, docs = merge_summaries(args.merge)
        first = docs[0]
        print(f"fuzz: merged {len(docs)} shard(s) of a campaign of {first['examples_total']} configurations "
              f"(base seed {first['seed']})")
        print(format_stats(stats))
        return exit_code(unexpected=len(stats.false_alarms), invalid=stats.invalid)
    shard = parse(args.shard) if args.shard else None
    layers, dtypes = filters(args.layer, args.dtype)   # a typo is an error before any engine loads
    engines = select_engines(args.engine)
    examples, seed = args.examples, args.seed
    if shard is not None:
        examples, seed = shard_budget(args.examples, *shard), shard_seed(args.seed, shard[0])
        print(f"fuzz: shard {shard[0]}/{shard[1]}: {examples} of {args.examples} configurations, seeds from {seed}")
    # More shards than configurations: this one has none to run.
    stats = run(examples, engines, seed=seed, jobs=args.jobs, layers=layers, dtypes=dtypes) if examples else \
        Stats(workers=0)
    print(format_stats(stats))
    if args.out:
        doc = summary(stats, examples=args.examples, seed=args.seed, shard=shard, jobs=args.jobs, engines=engines,
                      layers=layers, dtypes=dtypes)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        print(f"wrote {args.out}")
    return exit_code(unexpected=len(stats.false_alarms), invalid=stats.invalid)


def add_coverage_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `coverage` beyond the common ones."""
    p.add_argument("--missing-only", action="store_true", help="print only the parameters with uncovered values")


def run_coverage(args: argparse.Namespace) -> int:
    """Which parameter values each layer kind's cases exercise, and which are not covered."""
    suite = suite_from(args)
    # A stack's layers are single-layer cases validated on the shape that reaches them: they cover values too.
    layers = [layer.case for one in suite.stacks for layer in one.layers]
    print(format_coverage(coverage_table([*suite.cases, *layers]), missing_only=args.missing_only))
    return exit_code(invalid=len(suite.errors))

