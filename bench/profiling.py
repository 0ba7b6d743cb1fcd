"""Hot spots in treadle's code, from py-spy's collapsed stacks of the worker processes
(and of the runs in one process).

py-spy (``record --format raw``) writes one line per distinct stack: frames joined by ``;``,
outermost first, each ``function (file:line)``, then the sample count. Idle threads are not
sampled, so shares are of the time the workers were busy; a thread blocked on a lock or a
queue may still be sampled (its line is then a wait: ``queue.get``, ``Event.wait``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Report

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")
TOP = 12


@dataclass(slots=True)
class HotSpots:
    """Sample counts per treadle function.

    Attributes:
        total: every sample.
        inclusive: samples with the function anywhere on the stack.
        own: samples where it is the innermost treadle frame (its own code, plus the
            stdlib and C calls it makes directly, e.g. sqlite3 or json).
        own_lines: the same per source line (``function (file:line)``).
        outside: samples with no treadle frame at all.
    """

    total: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    own_lines: Counter[str] = field(default_factory=Counter)
    outside: int = 0

    def add_stack(self, frames: list[str], count: int) -> None:
        """Account one collapsed stack seen ``count`` times."""
        self.total += count
        ours = [(name, line) for name, line in map(_treadle_frame, frames) if name]
        if not ours:
            self.outside += count
            return
        for name in {name for name, _ in ours}:
            self.inclusive[name] += count
        name, line = ours[-1]
        self.own[name] += count
        self.own_lines[f"{name[:-1]}:{line})"] += count

    def hottest_line(self, name: str) -> tuple[str, int]:
        """The line of ``name`` with the most own samples, and their count."""
        prefix = f"{name[:-1]}:"
        lines = [(n, k) for k, n in self.own_lines.items() if k.startswith(prefix)]
        count, key = max(lines, default=(0, prefix + "?)"))
        return key[len(prefix) : -1], count


def _treadle_frame(frame: str) -> tuple[str | None, str]:
    """``("function (treadle/...py)", line)`` of a frame in treadle, else ``(None, "")``."""
    match = _FRAME.match(frame)
    if match is None:
        return None, ""
    path = "/" + match["file"].replace("\\", "/")  # py-spy prints paths under the cwd relative
    marker = path.rfind("/treadle/")
    if marker < 0:
        return None, ""
    return f"{match['func']} ({path[marker + 1 :]})", match["line"] or "?"


def read_profiles(paths: Iterable[Path]) -> HotSpots:
    """Merge the collapsed-stack files ``paths``."""
    spots = HotSpots()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                spots.add_stack(stack.split(";"), int(count))
    return spots


def workload_of(stem: str) -> str:
    """The workload a profile file is of, from its name: ``w1b_1w-w0`` (worker 0 of the W1b
    run with one worker) is ``W1B``; ``w1b_one`` (the run in one process) ``W1B one process``.
    """
    tag, *_ = stem.split("-")
    workload, *rest = tag.split("_")
    return workload.upper() + (" one process" if "one" in rest else "")


def print_hot_spots(profile_dir: Path, report: Report) -> None:
    """Print treadle's top functions for each profiled workload in ``profile_dir``."""
    by_workload: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(profile_dir.glob("*.txt")):
        by_workload[workload_of(path.stem)].append(path)
    for workload, paths in sorted(by_workload.items()):
        spots = read_profiles(paths)
        if not spots.total:
            continue
        report.note(
            f"\nprofile {workload} ({len(paths)} process file(s), {spots.total} busy samples; "
            f"{spots.outside / spots.total:.0%} outside treadle)"
        )
        report.note("  own time (innermost treadle frame, with the library calls it makes):")
        for name, count in spots.own.most_common(TOP):
            line, at_line = spots.hottest_line(name)
            report.note(
                f"    {count / spots.total:6.1%}  {name}  "
                f"(line {line}: {at_line / spots.total:.1%})"
            )
        report.note("  inclusive time:")
        for name, count in spots.inclusive.most_common(TOP):
            report.note(f"    {count / spots.total:6.1%}  {name}")
