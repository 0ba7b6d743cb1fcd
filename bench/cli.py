"""``python -m bench``: parse the options, set up the stores, run, print, clean up."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench import observability, peer_dbos, procs, profiling, sdk
from bench.report import Measurement, Report, machine_facts
from bench.stores import DEFAULT_POSTGRES_URL, PostgresTarget, SqliteTarget, StoreTarget
from bench.workloads import Bench, Sizes, run_treadle

WORKLOADS = ("W1a", "W1b", "W2", "W3", "W4")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark treadle (and optionally a peer engine); prints figures.",
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument(
        "--workers",
        type=_int_list,
        default=[1],
        help="worker processes for the throughput workloads W1b and W2, e.g. 1,2,4",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument(
        "--only",
        type=_workloads,
        default=set(WORKLOADS),
        help="workloads to run, e.g. W1,W3 (W1 means W1a and W1b)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--peer", choices=("dbos",), help="run the same workloads on a peer")
    parser.add_argument(
        "--sdk",
        choices=("python", "js"),
        help="run W1a, W1b and W3 through `treadle serve` with this official Dapr SDK too, "
        "beside the same workloads embedded (CPU per step of the server and of the SDK)",
    )
    parser.add_argument(
        "--sdk-ab",
        type=Path,
        metavar="DIR",
        help="with --sdk: also run each SDK workload with `treadle serve` from the treadle "
        "source tree DIR (another checkout), alternating with this one: an A/B in one run",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the workers (and one-process runs) with py-spy into DIR; print hot spots",
    )
    parser.add_argument(
        "--observability",
        type=int,
        nargs="?",
        const=3,
        metavar="ROUNDS",
        help="instead of the workloads: W1b and W3 with the runtime's metrics and traces off "
        "and on, alternating, ROUNDS times each (default 3); prints the ratios",
    )
    return parser.parse_args(argv)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("worker counts must be >= 1")
    return values


def _workloads(text: str) -> set[str]:
    known = {w.upper(): {w} for w in WORKLOADS} | {"W1": {"W1a", "W1b"}}
    chosen: set[str] = set()
    for part in text.split(","):
        name = part.strip().upper()
        if name in known:
            chosen |= known[name]
        elif name:
            raise argparse.ArgumentTypeError(
                f"unknown workload {part!r}; choose from W1, {', '.join(WORKLOADS)}"
            )
    return chosen


def open_targets(store: str, report: Report) -> list[StoreTarget]:
    """The store targets to run on; PostgreSQL is skipped with a reason if unusable."""
    targets: list[StoreTarget] = []
    if store in ("sqlite", "both"):
        targets.append(SqliteTarget())
    if store in ("postgres", "both"):
        url = os.environ.get("TREADLE_BENCH_POSTGRES", DEFAULT_POSTGRES_URL)
        target = PostgresTarget.open(url)
        if isinstance(target, str):
            report.header["store postgres"] = f"SKIPPED: {target}"
        else:
            targets.append(target)
    return targets


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if a workload failed."""
    args = parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes.full()
    report = Report(header=machine_facts())
    report.header["sizes"] = "quick" if args.quick else "full"
    report.header["workers"] = ",".join(map(str, args.workers)) + " (W1b, W2; others use 1)"
    if args.sdk is not None:
        args.only &= set(sdk.SDK_WORKLOADS)
    report.header["workloads"] = ",".join(w for w in WORKLOADS if w in args.only)
    targets = open_targets(args.store, report)
    if args.profile is not None:
        if procs.has_py_spy():
            report.header["profile"] = (
                f"py-spy samples of the workers and one-process runs in {args.profile} "
                "(the sampler slows them: take figures from a run without --profile)"
            )
        else:
            report.header["profile"] = "SKIPPED: py-spy is not on the PATH (pip install py-spy)"
            args.profile = None
    try:
        for target in targets:
            report.header[f"store {target.kind}"] = target.facts()
        if args.peer == "dbos":
            report.header["peer"] = peer_dbos.describe()
        if args.sdk is not None:
            command = sdk.sdk_command(args.sdk)
            report.header["sdk"] = (
                f"SKIPPED: {command}"
                if isinstance(command, str)
                else f"{args.sdk}: {' '.join(command[0])} (through treadle serve)"
            )
            if args.sdk_ab is not None:
                report.header["sdk A/B"] = (
                    f"each SDK workload again right after, with treadle serve from "
                    f"{args.sdk_ab} (rows sdk-{args.sdk}@{args.sdk_ab.name})"
                )
        report.print_header()
        for target in targets:
            run_store(target, args, sizes, report)
    finally:
        for target in targets:
            target.cleanup()
    if args.json is not None:
        report.write_json(args.json)
        print(f"results written to {args.json}")
    if report.errors:
        print(f"{len(report.errors)} workload(s) failed", file=sys.stderr)
        return 1
    return 0


def run_store(target: StoreTarget, args: argparse.Namespace, sizes: Sizes, report: Report) -> None:
    """All the selected workloads on one store: treadle, then the peer, then the comparison."""
    profile_dir: Path | None = None
    if args.profile is not None:
        profile_dir = args.profile / target.kind
        profile_dir.mkdir(parents=True, exist_ok=True)
    floor = target.commit_floor_ms(200 if args.quick else 2000)
    report.add(
        Measurement(
            "disk",
            target.kind,
            "floor",
            "one-row durable commit",
            floor,
            "ms",
            note=f"{1e3 / floor:,.0f} commits/s: the best a step that commits can do here",
        )
    )
    if args.observability is not None:
        report.note(f"== observability A/B on {target.kind} ==")
        observability.run_ab(target, sizes, args.workers[:1], args.observability, report)
        return
    report.note(f"== treadle on {target.kind} ==")
    bench = Bench("treadle", target, report, sizes, args.workers, profile_dir)
    run_treadle(bench, args.only)
    if profile_dir is not None:
        profiling.print_hot_spots(profile_dir, report)
    if args.sdk is not None:
        label = f"sdk-{args.sdk}"
        report.note(f"== {label}: the official SDK through treadle serve on {target.kind} ==")
        through = Bench(label, target, report, sizes, args.workers)
        other = None
        if args.sdk_ab is not None:
            other = Bench(f"{label}@{args.sdk_ab.name}", target, report, sizes, args.workers)
        sdk.run_sdk_workloads(through, args.sdk, args.only, other=other, other_tree=args.sdk_ab)
        report.compare(target.kind, label, sdk.TOPOLOGY)
    if args.peer == "dbos":
        if not peer_dbos.available():
            report.note("== dbos: SKIPPED: `import dbos` failed (pip install dbos to compare) ==")
            return
        report.note(f"== dbos on {target.kind} ==")
        peer = Bench("dbos", target, report, sizes, in_process=True)
        peer_dbos.run_dbos(peer, args.only)
        report.compare(target.kind, "dbos", peer_dbos.TOPOLOGY)
