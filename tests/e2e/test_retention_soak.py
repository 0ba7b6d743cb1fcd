"""A small soak of ``python -m bench.soak``: under steady load with retention on, the SQLite
file stops growing (purged pages are reused), where without retention it grows."""

from __future__ import annotations

from pathlib import Path

from bench.soak import growth, soak


def test_the_sqlite_file_stops_growing_with_retention(tmp_path: Path) -> None:
    waves = soak(tmp_path / "soak.db", workflows=1_600, wave=200, keep_s=0.2, retention=True)
    assert waves[-1].instances < 400, waves  # purges keep pace (a wave or two are kept)
    assert growth(waves) < 0.15, waves
    assert max(w.free_pages for w in waves) > 0, waves  # pages freed by purges, then reused
