"""The instance-id prefix filter of SQLite's ``list_instances``, and the order that keeps it
quick whatever the prefix matches.

A prefix is a range of the primary key (``[prefix, next prefix)``). When it matches few
rows, reading them by key and sorting them is quickest; when it matches many, walking the
creation-time index newest first and stopping at the page's end is. SQLite has no
statistics to tell, so the range's rows are counted first (from the key alone, cheap).
"""

from __future__ import annotations

import sqlite3

__all__ = ["FEW_ROWS", "prefix_filter"]

FEW_ROWS = 2000
"""Up to this many matching rows are read by key and sorted."""


def prefix_filter(conn: sqlite3.Connection, prefix: str) -> tuple[str, list[object], str]:
    """The WHERE clause and parameters for ids starting with ``prefix``, and the ORDER BY
    (newest first) to use with it."""
    clause = "instance_id >= ? AND substr(instance_id, 1, ?) = ?"  # substr keeps it exact
    params: list[object] = [prefix, len(prefix), prefix]
    upper = _next_prefix(prefix)
    if upper is not None:
        clause += " AND instance_id < ?"
        params.append(upper)
    count_sql = "SELECT count(*) FROM (SELECT 1 FROM instances WHERE instance_id >= ?"
    count_params: list[object] = [prefix]
    if upper is not None:
        count_sql += " AND instance_id < ?"
        count_params.append(upper)
    matching = conn.execute(f"{count_sql} LIMIT {FEW_ROWS + 1})", count_params).fetchone()[0]
    if matching <= FEW_ROWS:
        # '+' keeps SQLite from walking the creation index for the order: read by key, sort.
        return clause, params, "+created_at DESC, instance_id DESC"
    # and here from using the key: walk the creation index, newest first, to the page's end.
    return (
        clause.replace("instance_id", "+instance_id"),
        params,
        "created_at DESC, instance_id DESC",
    )


def _next_prefix(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (None if none)."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(last + 1)
