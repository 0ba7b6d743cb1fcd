"""``treadle schedule ...``: create and manage durable schedules from the command line.

Argument parsing only; every command is one call of the client's schedule methods
(:class:`~treadle.client.schedules.ScheduleOperations`). Registered on the root group by
:mod:`treadle.cli`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Protocol

import click

from treadle.client import WorkflowClient
from treadle.client.schedules import ScheduleDescription
from treadle.core import codec
from treadle.core.validation import parse_duration
from treadle.errors import InvalidInputError

__all__ = ["schedule"]


class _Session(Protocol):
    """What a command needs of the CLI's session (:class:`treadle.cli.Session`)."""

    def client(self) -> WorkflowClient:
        """The command's client (opened on first use)."""
        ...


def _client() -> WorkflowClient:
    session: _Session = click.get_current_context().obj
    return session.client()


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{option} {value!r} is not an ISO 8601 time (such as 2026-12-07T03:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _line(d: ScheduleDescription) -> str:
    when = d.spec.cron if d.spec.cron is not None else f"every {d.spec.every}"
    zone = f" {d.spec.time_zone}" if d.spec.cron is not None else ""
    state = "paused" if d.paused else f"next {d.next_slot.isoformat() if d.next_slot else '-'}"
    return f"{d.schedule_id}  {d.workflow}  {when}{zone}  {d.spec.overlap.value}  {state}"


_OUTPUT = click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format; json is machine-readable.",
)


@click.group()
def schedule() -> None:
    """Create and manage durable cron and interval schedules."""


@schedule.command()
@click.argument("schedule_id")
@click.argument("workflow")
@click.option("--cron", help="A 5-field cron expression, such as '*/5 * * * *'.")
@click.option("--every", help="Or an interval, such as 30s, 5m, 1h.")
@click.option("--input", "input_", help="The JSON input every instance gets.")
@click.option("--tz", "time_zone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--start-at", help="No slot before this ISO 8601 time.")
@click.option("--end-at", help="No slot after this ISO 8601 time.")
@click.option(
    "--overlap",
    type=click.Choice(["skip", "buffer_one", "allow"]),
    default="skip",
    show_default=True,
    help="What a slot does while the last instance still runs.",
)
@click.option(
    "--catchup-window", default="1h", show_default=True, help="Missed slots this old fire."
)
@click.option("--replace", is_flag=True, help="Replace a schedule with this id.")
def create(
    schedule_id: str,
    workflow: str,
    cron: str | None,
    every: str | None,
    input_: str | None,
    time_zone: str,
    start_at: str | None,
    end_at: str | None,
    overlap: str,
    catchup_window: str,
    replace: bool,
) -> None:
    """Create a schedule that starts WORKFLOW at every slot."""
    _client().schedules.create(
        schedule_id,
        workflow,
        cron=cron,
        every=parse_duration(every, "--every") if every is not None else None,
        input=codec.encode(codec.decode(input_)) if input_ else None,
        start_at=_time(start_at, "--start-at"),
        end_at=_time(end_at, "--end-at"),
        overlap=overlap,
        catchup_window=parse_duration(catchup_window, "--catchup-window"),
        time_zone=time_zone,
        replace=replace,
    )
    click.echo(f"created schedule {schedule_id}")


@schedule.command("list")
@_OUTPUT
def list_(fmt: str) -> None:
    """List the schedules."""
    described = _client().list_schedules()
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in described], indent=2))
        return
    for d in described:
        click.echo(_line(d))


@schedule.command()
@click.argument("schedule_id")
@_OUTPUT
def get(schedule_id: str, fmt: str) -> None:
    """Show a schedule and its latest runs."""
    d = _client().get_schedule(schedule_id)
    if d is None:
        raise click.ClickException(f"no schedule with id {schedule_id!r}")
    if fmt == "json":
        click.echo(json.dumps(d.to_json(), indent=2))
        return
    click.echo(_line(d))
    for run in d.recent_runs:
        click.echo(f"  {run.slot.isoformat()}  {run.instance_id or '(skipped)'}")


@schedule.command()
@click.argument("schedule_id")
def pause(schedule_id: str) -> None:
    """Stop firing a schedule until it is resumed."""
    _client().pause_schedule(schedule_id)
    click.echo(f"paused {schedule_id}")


@schedule.command()
@click.argument("schedule_id")
def resume(schedule_id: str) -> None:
    """Fire a paused schedule again from its next slot."""
    _client().resume_schedule(schedule_id)
    click.echo(f"resumed {schedule_id}")


@schedule.command()
@click.argument("schedule_id")
def trigger(schedule_id: str) -> None:
    """Start the schedule's workflow now; print the instance id."""
    click.echo(_client().trigger_schedule(schedule_id))


@schedule.command()
@click.argument("schedule_id")
def delete(schedule_id: str) -> None:
    """Delete a schedule (the instances it started stay)."""
    _client().delete_schedule(schedule_id)
    click.echo(f"deleted {schedule_id}")
