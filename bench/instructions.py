"""``python -m bench.instructions A B [--workload W3|W1b] [--store sqlite|postgres]
[--steps 100,500] [--repeat 2]``: the machine instructions a W3 step (or a W1b workflow) costs
in two versions of treadle, counted by valgrind.

Wall-clock and CPU figures on a shared machine move by 10-50% from one run to the next, which
hides a change of a few percent however many rounds are run; the instructions a step executes
do not depend on the machine's load. Each side (a source tree or a git revision, as for
``python -m bench.ab``) runs, in one process, a runtime on a fresh store and a client, one
``long_chain`` of 20 steps to warm up, then one of each size in ``--steps``, under
``valgrind --tool=callgrind --separate-threads=yes --fair-sched=yes``. A step's cost is the
difference between the two sizes' counts divided by the difference in steps (the start-up and
the warm-up cancel out), given two ways:

- ``busiest``: the thread that executed the most (the activity thread, which runs the activity
  and commits the next step inline): the step's own work, steadiest from run to run;
- ``threads``: every thread but the main one (the dispatcher, the watcher, the watchdog, the
  chores thread...): their periodic work runs per unit of time, and a run under valgrind is
  about fifty times slower, so this one carries some of the machine's timing;
- ``all``: every thread, the main one (the client) included.

``--workload W1b`` counts a seed task chain (three activities) instead, as the bench's W1b
runs it in one process: ``--steps`` is then the two numbers of workflows started at once and
waited for (default 50,250), after 20 to warm up; the client's starts run on the main
thread, so ``all`` is the figure to read (a workflow's cost from its start to its end).

Only user-space instructions are counted (not the kernel's writes and fsyncs, the same in both
versions). ``--repeat`` runs each size that many times per side; the medians are printed, with
B/A. Each run takes tens of seconds (valgrind); the sides alternate. ``--env-b NAME=VALUE``
sets a variable for side B alone: the same tree on both sides with
``TREADLE_BENCH_OBSERVABILITY=1`` on B counts what metrics and traces add to a step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.ab import compile_tree, source_tree
from bench.stores import DEFAULT_POSTGRES_URL

# What each run executes, from the side's own tree (which may predate this module): a runtime
# of that tree's bench app and a client in one process, a warm-up chain, then the measured one.
DRIVER = """
import sys
import treadle as wf
from bench import app
url, steps, workload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runtime = app.build_runtime(url)
with runtime:
    client = wf.DaprWorkflowClient(url)
    if workload == "W3":
        for n in (20, steps):
            iid = client.schedule_new_workflow(app.long_chain, input=n)
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=3600)
            assert state is not None and state.runtime_status.name == "COMPLETED", state
    else:
        for batch in (range(20), range(100, 100 + steps)):
            ids = [client.schedule_new_workflow(app.task_chain, input=i) for i in batch]
            for iid in ids:
                state = client.wait_for_workflow_completion(iid, timeout_in_seconds=3600)
                assert state is not None and state.runtime_status.name == "COMPLETED", state
"""

DEFAULT_SIZES = {"W3": "100,500", "W1b": "50,250"}
"""``--steps`` by workload: chain lengths for W3, numbers of workflows for W1b."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description="Instructions a W3 step (or W1b workflow) executes in two versions of treadle "
        "(callgrind).",
    )
    parser.add_argument("a", help="side A: a source tree or a git revision (the old one)")
    parser.add_argument("b", help="side B: a source tree or a git revision (the new one)")
    parser.add_argument(
        "--workload",
        choices=tuple(DEFAULT_SIZES),
        default="W3",
        help="W3 (a step of a long chain, default) or W1b (a task chain of many started at once)",
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES_URL, help="server for --store postgres"
    )
    parser.add_argument(
        "--steps",
        help="the two sizes, small first: W3 chain lengths (default 100,500), W1b numbers of "
        "workflows (default 50,250)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each size per side")
    parser.add_argument(
        "--env-b",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set this in side B's environment only (repeatable): e.g. the same tree twice "
        "with TREADLE_BENCH_OBSERVABILITY=1 on B gives what metrics and traces cost",
    )
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = DEFAULT_SIZES[args.workload]
    try:
        small, large = (int(x) for x in args.steps.split(","))
    except ValueError:
        parser.error(f"--steps takes two whole numbers, small first (not {args.steps!r})")
    if not 0 < small < large:
        parser.error(f"--steps: the first length must be smaller and above 0 (not {args.steps})")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.sizes = (small, large)
    args.b_env = {}
    for item in args.env_b:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env-b takes NAME=VALUE (not {item!r})")
        args.b_env[name] = value
    return args


KINDS = ("busiest", "threads", "all")
"""The figures of a run (see the module), in the order :func:`count` returns them."""


def count(
    tree: Path, url: str, steps: int, extra_env: dict[str, str] | None = None, workload: str = "W3"
) -> tuple[int, int, int]:
    """One run of ``steps`` steps (W1b: workflows) from ``tree`` under callgrind (with
    ``extra_env`` set): the instructions of its busiest thread, of every thread but the main
    one, and of every thread."""
    with tempfile.TemporaryDirectory(prefix="treadle-ir-") as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            "--fair-sched=yes",
            f"--callgrind-out-file={tmp}/cg.%p",
            sys.executable,
            "-c",
            DRIVER,
            url,
            str(steps),
            workload,
        ]
        env = dict(os.environ, **(extra_env or {}), PYTHONPATH=str(tree))
        proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise SystemExit(f"the run from {tree} failed ({proc.returncode}):\n{tail}")
        totals: dict[str, int] = {}
        for path in Path(tmp).glob("cg.*-*"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):
                    totals[path.name] = int(line.split()[1])
        others = [n for name, n in totals.items() if not name.endswith("-01")]
        if not others:
            raise SystemExit(f"callgrind wrote no per-thread counts for the run from {tree}")
        return max(others), sum(others), sum(totals.values())


@contextmanager
def _fresh_store(store: str, postgres_url: str) -> Iterator[str]:
    """The URL of an empty store for one run, removed afterwards: a SQLite file in a
    temporary directory, or a PostgreSQL schema of its own, dropped."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="treadle-ir-db-") as tmp:
            yield f"sqlite:///{tmp}/w3.db"
        return
    import psycopg

    schema = f"ir_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}schema={schema}"
    finally:
        with psycopg.connect(postgres_url.partition("?")[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: Sequence[str] | None = None) -> int:
    """Count both sides and print the per-step figures."""
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        print(
            "valgrind is not installed: install it (apt-get install -y valgrind) to count "
            "instructions",
            file=sys.stderr,
        )
        return 2
    small, large = args.sizes
    unit = "step" if args.workload == "W3" else "workflow"
    with ExitStack() as stack:
        trees = {
            label: stack.enter_context(source_tree(spec))
            for label, spec in (("A", args.a), ("B", args.b))
        }
        for tree in trees.values():
            compile_tree(tree)
        per_step: dict[str, dict[str, list[float]]] = {
            label: {kind: [] for kind in KINDS} for label in trees
        }
        for round_ in range(args.repeat):
            for label, tree in trees.items():
                runs = []
                for steps in (small, large):
                    extra = args.b_env if label == "B" else None
                    with _fresh_store(args.store, args.postgres_url) as url:
                        runs.append(count(tree, url, steps, extra, args.workload))
                    print(f"{label} round {round_ + 1}: {steps} {unit}s ran", flush=True)
                for i, kind in enumerate(KINDS):
                    value = (runs[1][i] - runs[0][i]) / (large - small)
                    per_step[label][kind].append(value)
                    print(f"{label} round {round_ + 1}: {kind} {value:,.0f} instructions a {unit}")
        print(
            f"# {args.workload} on {args.store}, instructions a {unit} ({large} minus {small} "
            f"{unit}s, median of {args.repeat}); A = {args.a}, B = {args.b}"
            + "".join(f" with {name}={value}" for name, value in args.b_env.items())
        )
        for kind in KINDS:
            a = statistics.median(per_step["A"][kind])
            b = statistics.median(per_step["B"][kind])
            print(f"{kind:8s} A {a:>10,.0f}  B {b:>10,.0f}  B/A {b / a:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
