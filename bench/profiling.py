"""Hot spots in treadle's code, from py-spy's collapsed stacks of the worker processes.

py-spy (``record --format raw``) writes one line per distinct stack: frames joined by ``;``,
outermost first, each ``function (file:line)``, then the sample count. Idle threads are not
sampled, so shares are of the time the workers were busy.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Report

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")
TOP = 12


@dataclass(slots=True)
class HotSpots:
    """Sample counts per treadle function.

    Attributes:
        total: every sample.
        inclusive: samples with the function anywhere on the stack.
        own: samples where it is the innermost treadle frame (its own code, plus the
            stdlib and C calls it makes directly, e.g. sqlite3 or json).
        outside: samples with no treadle frame at all.
    """

    total: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    outside: int = 0

    def add_stack(self, frames: list[str], count: int) -> None:
        """Account one collapsed stack seen ``count`` times."""
        self.total += count
        names = [_treadle_name(f) for f in frames]
        ours = [n for n in names if n is not None]
        if not ours:
            self.outside += count
            return
        for name in set(ours):
            self.inclusive[name] += count
        self.own[ours[-1]] += count


def _treadle_name(frame: str) -> str | None:
    match = _FRAME.match(frame)
    if match is None:
        return None
    path = match["file"].replace("\\", "/")
    marker = path.rfind("/treadle/")
    if marker < 0:
        return None
    return f"{match['func']} ({path[marker + 1 :]})"


def read_profiles(paths: Iterable[Path]) -> HotSpots:
    """Merge the collapsed-stack files ``paths``."""
    spots = HotSpots()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                spots.add_stack(stack.split(";"), int(count))
    return spots


def print_hot_spots(profile_dir: Path, report: Report) -> None:
    """Print treadle's top functions for each profiled workload in ``profile_dir``."""
    by_workload: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(profile_dir.glob("*.txt")):
        by_workload[path.stem.split("_")[0].split("-")[0].upper()].append(path)
    for workload, paths in sorted(by_workload.items()):
        spots = read_profiles(paths)
        if not spots.total:
            continue
        report.note(
            f"\nprofile {workload} ({len(paths)} worker file(s), {spots.total} samples; "
            f"{spots.outside / spots.total:.0%} outside treadle)"
        )
        report.note("  own time (innermost treadle frame, with the library calls it makes):")
        for name, count in spots.own.most_common(TOP):
            report.note(f"    {count / spots.total:6.1%}  {name}")
        report.note("  inclusive time:")
        for name, count in spots.inclusive.most_common(TOP):
            report.note(f"    {count / spots.total:6.1%}  {name}")
