"""Log output for ``treadle worker`` and ``treadle serve``: plain text or one JSON object a line.

Library users get the same records through :mod:`logging` under the ``treadle.*`` loggers
and format them as they like; :class:`JsonFormatter` is there for them too.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The format of ``--log-format text``."""

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
"""The attributes every record has: the others were given with ``extra=`` and are fields."""


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``time``, ``level``, ``logger``, ``message``, the
    values given with ``extra=`` (``instance_id``, ``workflow_name``, ``error_type``, ...),
    and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Send the log to stderr at ``level`` (``debug``, ``info``, ...), as ``fmt`` (``text``
    or ``json``), replacing the root logger's handlers."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
