"""Log output for ``treadle worker`` and ``treadle serve``: plain text or one JSON object a line;
and, on ``kill -USR1``, the stack of every thread.

Library users get the same records through :mod:`logging` under the ``treadle.*`` loggers
and format them as they like; :class:`JsonFormatter` is there for them too.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import traceback
from datetime import datetime, timezone
from typing import Any, TextIO

__all__ = ["JsonFormatter", "configure_logging", "dump_stacks_on_sigusr1", "write_stacks"]

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


def write_stacks(stream: TextIO) -> None:
    """Write the Python stack of every thread of this process to ``stream``, each headed
    ``Stack of thread NAME (IDENT), most recent call last:``. Taken under the interpreter's
    lock: the picture is consistent, and reading it cannot crash the process (as
    ``faulthandler``'s dump of other threads can, reading their frames while they run)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts: list[str] = []
    for ident, frame in sys._current_frames().items():
        name = names.get(ident, "?")
        parts.append(f"Stack of thread {name} ({ident:#x}), most recent call last:\n")
        parts.extend(traceback.format_stack(frame))
    stream.write("".join(parts))
    stream.flush()


def dump_stacks_on_sigusr1() -> None:
    """Make ``kill -USR1 PID`` write every thread's stack to stderr (see :func:`write_stacks`):
    where a process that seems stuck is waiting. The process goes on as before. Call from the
    main thread (which runs the handler); nothing on a platform without SIGUSR1 (Windows)."""
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda _signum, _frame: write_stacks(sys.stderr))
