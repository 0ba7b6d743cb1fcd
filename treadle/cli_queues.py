"""``treadle queue``: see and set the limits of the store's named queues, which every worker
claims under (see :mod:`treadle.store.queues`)."""

from __future__ import annotations

import json
from typing import Protocol

import click

from treadle.client import WorkflowClient
from treadle.client.queues import describe
from treadle.core.validation import parse_duration
from treadle.errors import InvalidInputError
from treadle.store.queues import Queue

__all__ = ["queue"]


class _Session(Protocol):
    """What a command needs of the CLI's session (:class:`treadle.cli.Session`)."""

    def client(self) -> WorkflowClient:
        """The command's client (opened on first use)."""
        ...


def _client() -> WorkflowClient:
    session: _Session = click.get_current_context().obj
    return session.client()


@click.group()
def queue() -> None:
    """See and set the limits of named queues, shared by every worker of the store."""


@queue.command(name="list")
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format; json is machine-readable.",
)
def list_(fmt: str) -> None:
    """The limits of every queue, and who set them (a worker's registration, or pinned)."""
    found = _client().list_queue_limits()
    if fmt == "json":
        rows = [
            {
                "queue": q.queue.name,
                "concurrency": q.queue.concurrency,
                "rate_limit": q.queue.rate_limit,
                "period_s": q.queue.period.total_seconds(),
                "pinned": q.pinned,
                "updated_by": q.updated_by,
                "updated_at": q.updated_at.isoformat(),
            }
            for q in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for limits in found:
        click.echo(describe(limits))


@queue.command(name="set")
@click.argument("name")
@click.option("--concurrency", type=click.IntRange(min=1), help="At most this many at once.")
@click.option("--rate-limit", type=click.IntRange(min=1), help="At most this many starts ...")
@click.option("--period", default="1s", show_default=True, help="... per this window.")
def set_(name: str, concurrency: int | None, rate_limit: int | None, period: str) -> None:
    """Set and pin the limits of queue NAME for every worker at once (no option: no limit).
    Workers' registrations leave pinned limits alone until `treadle queue release NAME`."""
    try:
        limits = Queue(name, concurrency, rate_limit, parse_duration(period, "--period"))
    except ValueError as exc:
        raise InvalidInputError(f"queue {name!r}: {exc}") from None
    _client().set_queue_limits(limits)
    click.echo(f"Queue {name!r} pinned: {limits}")


@queue.command()
@click.argument("name")
def release(name: str) -> None:
    """Unpin the limits of queue NAME: the next worker registering it replaces them."""
    if not _client().release_queue_limits(name):
        raise InvalidInputError(f"the store has no limits for queue {name!r}")
    click.echo(f"Queue {name!r} released: the next registration sets its limits")
