"""Versioned SQL schemas: ``<backend>/NNNN_<what>.sql``, applied in order on open."""

from __future__ import annotations

from importlib import resources


def migration_sql(backend: str, version: int) -> str:
    """The SQL text of migration ``version`` for ``backend`` ("sqlite" or "postgres").

    Raises:
        FileNotFoundError: no such migration.
    """
    folder = resources.files(__name__).joinpath(backend)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(f"{version:04d}_") and entry.name.endswith(".sql"):
            return entry.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no {backend} migration {version:04d}")
