"""The ``treadle`` command line: argument parsing, then client and runtime calls.

Add a group with ``@main.group()`` and a command with ``@main.command()``; take the
``Session`` with ``@pass_session`` (its ``db`` is the store URL; ``client()`` opens a client,
``reader()`` one for a command that only reads). ``--db`` is accepted before or after any
subcommand. Treadle's errors print one line on stderr and exit 1; bad arguments exit 2.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import click

from treadle.cli_queues import queue
from treadle.cli_schedules import schedule
from treadle.client import WorkflowClient, WorkflowState, WorkflowStatus
from treadle.core import codec
from treadle.core.history import HistoryEvent, event_to_dict
from treadle.core.validation import parse_duration
from treadle.errors import InvalidInputError, TreadleError, WorkflowNotFoundError
from treadle.runtime import WorkflowRuntime
from treadle.runtime.loading import load_runtime
from treadle.runtime.logs import configure_logging, dump_stacks_on_sigusr1
from treadle.store import DEFAULT_STORE_URL, redact_url
from treadle.store import migrate as store_migrate
from treadle.store import schema_status as store_schema_status
from treadle.testing import Replayer

PAYLOAD_WIDTH = 60
"""History payloads longer than this are shortened in table output."""

_STATUS_NAMES = [s.name for s in WorkflowStatus if s is not WorkflowStatus.UNKNOWN]
_FINISHED = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.TERMINATED})
NO_WORKER_NOTICE_S = 5.0
"""``workflow run --wait`` says after this long that no worker has started the instance."""
_OUTPUT = click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format; json is machine-readable.",
)


_LOG_LEVEL = click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (the log goes to stderr).",
)
_LOG_FORMAT = click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="Log as text lines, or as one JSON object a line.",
)


@dataclass
class Session:
    """What every command shares: the store URL and a client opened on first use."""

    db: str
    ctx: click.Context
    _client: WorkflowClient | None = field(default=None, repr=False)

    def client(self) -> WorkflowClient:
        """The client on ``db``; closed when the command ends."""
        if self._client is None:
            self._client = WorkflowClient(self.db)
            self.ctx.call_on_close(self._client.close)
        return self._client

    def reader(self) -> WorkflowClient:
        """The client for a command that only reads: it never creates a store (a SQLite
        file or its directory, a PostgreSQL schema) where there is none.

        Raises:
            click.ClickException: there is no treadle store at ``db``.
        """
        if self._client is None:
            missing = _missing_store(self.db)
            if missing is not None:
                raise click.ClickException(missing)
        return self.client()


def _missing_store(url: str) -> str | None:
    """Why there is no treadle store at ``url`` (None if there is one)."""
    current, _ = store_schema_status(url)
    if current:
        return None
    where = redact_url(url)
    path = _sqlite_file(url)
    if path is not None and not os.path.exists(path):
        what = f"no treadle store at {where}: the file {path!r} does not exist"
    else:
        what = f"no treadle store at {where}: its tables were never created"
    return (
        f"{what}; check --db or $TREADLE_STORE (a worker, `treadle serve` or "
        "`treadle db migrate` creates it)"
    )


def _sqlite_file(url: str) -> str | None:
    """The file a ``sqlite://`` URL names, or None for other URLs (and memory stores)."""
    if not url.lower().startswith("sqlite:"):
        return None
    from treadle.store.sqlite import parse_sqlite_url

    database, is_uri, _ = parse_sqlite_url(url)
    return None if is_uri else database


pass_session = click.make_pass_decorator(Session)


def _json(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Parse an option's JSON value, such as ``'{"a": 1}'``, ``42`` or ``'"text"'``."""
    if value is None:
        return None
    try:
        return codec.decode(value)
    except InvalidInputError as exc:
        raise click.BadParameter(
            f"{value!r} is not valid JSON ({exc.__cause__ or exc}); "
            """quote a string twice, e.g. '"text"'"""
        ) from exc


@dataclass(frozen=True)
class _Given:
    """An option's JSON value that was given (its value may be null)."""

    value: Any


class _Group(click.Group):
    """The root group: turns treadle's errors into a message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (TreadleError, TimeoutError) as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.option(
    "--db",
    metavar="URL",
    envvar="TREADLE_STORE",
    default=DEFAULT_STORE_URL,
    show_default=True,
    help="Store URL (sqlite:///file.db, postgresql://...); env TREADLE_STORE.",
)
@click.version_option(package_name="treadle")
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """treadle: durable workflows with the Dapr workflow programming model."""
    ctx.obj = Session(db=db, ctx=ctx)


main.add_command(schedule)
main.add_command(queue)


@main.group()
def db() -> None:
    """Inspect and migrate the store's schema."""


@db.command("status")
@pass_session
def db_status(session: Session) -> None:
    """Show the schema version in the store and the newest this treadle knows (creates
    nothing)."""
    current, latest = store_schema_status(session.db)
    state = "up to date" if current == latest else ("not created" if current == 0 else "behind")
    path = _sqlite_file(session.db)
    if path is not None and not os.path.exists(path):
        state = f"not created (no file at {path!r})"
    click.echo(f"schema version {current} (this treadle knows {latest}): {state}")


@db.command("migrate")
@pass_session
def db_migrate(session: Session) -> None:
    """Create or upgrade the store's schema (safe while workers run)."""
    before, _ = store_schema_status(session.db)
    after = store_migrate(session.db)
    click.echo(f"schema version {before} -> {after}")


@main.group()
def workflow() -> None:
    """Start, inspect and manage workflow instances."""


# ---- reads -------------------------------------------------------------------------------
@workflow.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(_STATUS_NAMES, case_sensitive=False),
    help="Only instances with this status (repeatable).",
)
@click.option("--name", help="Only instances of this workflow.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--page-token", help="Continue from a previous page.")
@_OUTPUT
@pass_session
def list_(
    session: Session,
    statuses: Sequence[str],
    name: str | None,
    limit: int,
    page_token: str | None,
    fmt: str,
) -> None:
    """List instances, newest first."""
    page = session.reader().list_workflows(
        status=[WorkflowStatus[s.upper()] for s in statuses] or None,
        name=name,
        page_size=limit,
        continuation_token=page_token,
    )
    if fmt == "json":
        states = [s.to_json() for s in page.states]
        _echo_json({"workflows": states, "next_page_token": page.continuation_token})
        return
    rows = [
        [
            s.instance_id,
            s.name,
            s.runtime_status.name,
            _time(s.created_at),
            _time(s.last_updated_at),
        ]
        for s in page.states
    ]
    _echo_table(["INSTANCE ID", "NAME", "STATUS", "CREATED (UTC)", "UPDATED (UTC)"], rows)
    if page.continuation_token:
        click.echo(f"more: --page-token {page.continuation_token}", err=True)


@workflow.command()
@click.argument("instance_id")
@_OUTPUT
@pass_session
def get(session: Session, instance_id: str, fmt: str) -> None:
    """Show an instance's status, input and output."""
    _echo_state(_require_state(session.reader(), instance_id), fmt)


@workflow.command()
@click.argument("instance_id")
@_OUTPUT
@pass_session
def history(session: Session, instance_id: str, fmt: str) -> None:
    """Show the history events of an instance's current run, oldest first."""
    events = session.reader().get_workflow_history(instance_id)
    if fmt == "json":
        _echo_json([event_to_dict(e) for e in events])
        return
    rows = [_event_row(e, instance_id) for e in events]
    _echo_table(["TIME (UTC)", "KIND", "IDS", "NAME", "PAYLOAD"], rows)


@workflow.command()
@click.argument("instance_id")
@pass_session
def export(session: Session, instance_id: str) -> None:
    """Print an instance's history as a history file (versioned JSON) for `treadle replay`."""
    click.echo(session.reader().export_workflow_history(instance_id), nl=False)


# ---- actions -----------------------------------------------------------------------------
@workflow.command()
@click.argument("instance_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "svg"]),
    default="mermaid",
    show_default=True,
    help="Mermaid text (a flowchart) or an SVG picture.",
)
@click.option(
    "-o",
    "--output",
    "path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (default: print).",
)
@pass_session
def graph(session: Session, instance_id: str, fmt: str, path: str | None) -> None:
    """Draw an instance's graph: its steps in order, parallel ones side by side, large
    fan-outs as one group with counts, colour by outcome (the dashboard's picture)."""
    from treadle.core.visual import build_graph, fold, render_graph_svg, render_mermaid

    client = session.reader()
    _require_state(client, instance_id)
    drawn = build_graph(fold(client.get_workflow_history(instance_id)))
    text = render_mermaid(drawn) if fmt == "mermaid" else render_graph_svg(drawn)
    if path is None:
        click.echo(text, nl=False)
        return
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    click.echo(f"wrote {path}")


@workflow.command()
@click.argument("name")
@click.option(
    "--input", "input_", metavar="JSON", callback=_json, help="The workflow's input, as JSON."
)
@click.option("--id", "instance_id", help="Instance id (default: a new UUID).")
@click.option(
    "--app-id",
    help="The app whose workers run it (default: $TREADLE_APP_ID, else $APP_ID, else none).",
)
@click.option("--wait", is_flag=True, help="Wait for the instance to finish; print its state.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Seconds to --wait (default: none).")
@_OUTPUT
@pass_session
def run(
    session: Session,
    name: str,
    input_: Any,
    instance_id: str | None,
    app_id: str | None,
    wait: bool,
    timeout: float | None,
    fmt: str,
) -> None:
    """Start workflow NAME (a worker must have it registered). Prints the instance id; with
    --wait, the final state, and exits 1 unless it COMPLETED."""
    client = session.client()
    if app_id is not None:
        client = WorkflowClient(client.store, app_id=app_id)  # (the store stays the session's)
    iid = client.schedule_new_workflow(name, input=input_, instance_id=instance_id)
    if not wait:
        click.echo(iid)
        return
    click.echo(f"started {name!r} as instance {iid}; waiting for it to finish", err=True)
    state = _wait_for_end(client, iid, name, timeout)
    if state is None:
        raise WorkflowNotFoundError(f"workflow instance {iid!r} was purged while running")
    _echo_state(state, fmt)
    if state.runtime_status is not WorkflowStatus.COMPLETED:
        raise click.ClickException(f"workflow {iid!r} finished {state.runtime_status.name}")


@workflow.command()
@click.argument("instance_id")
@click.option(
    "--from-event",
    "event_id",
    required=True,
    type=click.IntRange(min=0),
    help="The event id of the activity to run again (0: the whole workflow).",
)
@click.option("--id", "new_id", help="The new instance's id (default: a new UUID).")
@click.option(
    "--input",
    "input_",
    metavar="JSON",
    callback=lambda ctx, param, value: _Given(_json(ctx, param, value)) if value else None,
    help="A new input for that activity (0: the workflow).",
)
@pass_session
def rerun(
    session: Session, instance_id: str, event_id: int, new_id: str | None, input_: _Given | None
) -> None:
    """Run finished instance INSTANCE_ID again as a new instance, reusing the results
    recorded before the activity scheduled as --from-event. Prints the new instance's id."""
    options: dict[str, Any] = {} if input_ is None else {"input": input_.value}
    client = session.client()
    click.echo(
        client.rerun_workflow_from_event(instance_id, event_id, new_instance_id=new_id, **options)
    )


@workflow.command("raise-event")
@click.argument("instance_id")
@click.argument("event")
@click.option("--data", metavar="JSON", callback=_json, help="The event's payload, as JSON.")
@pass_session
def raise_event(session: Session, instance_id: str, event: str, data: Any) -> None:
    """Send EVENT to an instance (it waits with wait_for_external_event)."""
    client = session.client()
    _require_unfinished(client, instance_id, "the event would never be read")
    client.raise_workflow_event(instance_id, event, data=data)
    click.echo(f"raised {event!r} on {instance_id}")


@workflow.command()
@click.argument("instance_id")
@click.option(
    "--output", "output", metavar="JSON", callback=_json, help="The instance's output, as JSON."
)
@click.option("--recursive/--no-recursive", default=True, help="Also terminate its children.")
@pass_session
def terminate(session: Session, instance_id: str, output: Any, recursive: bool) -> None:
    """Terminate a running instance."""
    client = session.client()
    _require_unfinished(client, instance_id, "there is nothing to terminate")
    client.terminate_workflow(instance_id, output=output, recursive=recursive)
    click.echo(f"terminating {instance_id}")


@workflow.command()
@click.argument("instance_id")
@pass_session
def suspend(session: Session, instance_id: str) -> None:
    """Suspend (pause) an instance; events raised meanwhile wait for resume."""
    session.client().suspend_workflow(instance_id)
    click.echo(f"suspending {instance_id}")


@workflow.command()
@click.argument("instance_id")
@pass_session
def resume(session: Session, instance_id: str) -> None:
    """Resume a suspended instance."""
    session.client().resume_workflow(instance_id)
    click.echo(f"resuming {instance_id}")


@workflow.command()
@click.argument("instance_id", required=False)
@click.option("--recursive/--no-recursive", default=True, help="Also purge their children.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["COMPLETED", "FAILED", "TERMINATED"], case_sensitive=False),
    help="Purge the finished instances with this status (repeatable), not one instance.",
)
@click.option("--name", help="Only instances of this workflow.")
@click.option("--older-than", help="Only instances that finished this long ago (7d, 12h, 30m).")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@pass_session
def purge(
    session: Session,
    instance_id: str | None,
    recursive: bool,
    statuses: Sequence[str],
    name: str | None,
    older_than: str | None,
    dry_run: bool,
) -> None:
    """Delete a finished instance's state, or every finished instance matching the filters
    (--status, --name, --older-than); no worker needs to run."""
    by_filter = bool(statuses or name or older_than)
    if instance_id is not None and (by_filter or dry_run):
        raise click.UsageError("give an INSTANCE_ID or filters (--status, --name, --older-than)")
    if instance_id is not None:
        count = session.client().purge_workflow(instance_id, recursive=recursive)
        if count == 0:
            raise _not_found(instance_id)
    elif not by_filter:
        raise click.UsageError(
            "say what to purge: an INSTANCE_ID, or filters such as --status COMPLETED "
            "--older-than 7d"
        )
    else:
        before = None
        if older_than is not None:
            before = datetime.now(timezone.utc) - parse_duration(older_than, "--older-than")
        count = session.client().purge_workflows(
            status=[WorkflowStatus[s.upper()] for s in statuses] or None,
            name=name,
            finished_before=before,
            recursive=recursive,
            dry_run=dry_run,
        )
    plural = "s" if count != 1 else ""
    click.echo(
        f"would purge {count} instance{plural}" if dry_run else f"purged {count} instance{plural}"
    )


def _wait_for_end(
    client: WorkflowClient, iid: str, name: str, timeout: float | None
) -> WorkflowState | None:
    """Wait for ``iid`` to finish (``timeout`` seconds; None or 0: no limit); say on stderr
    when no worker has taken it after :data:`NO_WORKER_NOTICE_S`."""
    deadline = time.monotonic() + timeout if timeout else None
    first = NO_WORKER_NOTICE_S if deadline is None else min(timeout or 0, NO_WORKER_NOTICE_S)
    try:
        client.wait_for_workflow_start(iid, timeout_in_seconds=first)
    except TimeoutError:
        if deadline is None or time.monotonic() < deadline:
            click.echo(
                f"no worker has started instance {iid} after {first:g} s; is a worker with "
                f"workflow {name!r} registered running on this store? (still waiting)",
                err=True,
            )
    try:
        if deadline is None:
            return client.wait_for_workflow_completion(iid)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return client.wait_for_workflow_completion(iid, timeout_in_seconds=remaining)
    except TimeoutError:
        state = client.get_workflow_state(iid)
        status = "PURGED" if state is None else state.runtime_status.name
        raise TimeoutError(
            f"workflow {iid!r} did not finish within {timeout:g} s (status {status})"
        ) from None


# ---- worker ------------------------------------------------------------------------------
@main.command()
@click.argument("target", metavar="MODULE:RUNTIME")
@click.option(
    "--shutdown-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to let running activities finish on SIGINT/SIGTERM.",
)
@click.option(
    "--max-activity-deliveries",
    type=click.IntRange(min=1),
    default=None,
    help="Times an activity task may be handed out without its result coming back (its "
    "worker crashed or was killed) before it is failed as ActivityPoisoned, not run again. "
    "Default: the runtime's (10).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port at /metrics (0: a free port).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve the metrics on (0.0.0.0: every interface, for a scraper on "
    "another host).",
)
@click.option(
    "--tracing",
    is_flag=True,
    help="Emit OpenTelemetry spans of runs, activities and timers to the global tracer "
    "provider (configure it in MODULE or with opentelemetry-instrument; needs treadle[otel]).",
)
@_LOG_LEVEL
@_LOG_FORMAT
@pass_session
def worker(
    session: Session,
    target: str,
    shutdown_timeout: float,
    max_activity_deliveries: int | None,
    metrics_port: int | None,
    metrics_host: str,
    tracing: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Run the WorkflowRuntime named RUNTIME in MODULE until SIGINT or SIGTERM.

    A runtime created without a store URL uses --db. Instances that fail and leases taken
    over are logged at INFO."""
    configure_logging(log_level, log_format)
    os.environ["TREADLE_STORE"] = session.db
    runtime = _load_runtime(target)
    if max_activity_deliveries is not None:
        runtime.max_activity_deliveries = max_activity_deliveries
    if metrics_port is not None:
        runtime.enable_metrics(metrics_port, metrics_host)
    if tracing:
        runtime.enable_tracing()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    dump_stacks_on_sigusr1()
    runtime.start()
    click.echo(f"treadle worker {runtime.owner} on {redact_url(runtime.store.url)}")
    click.echo(f"workflows: {', '.join(runtime.workflow_names) or '(none)'}")
    click.echo(f"activities: {', '.join(runtime.activity_names) or '(none)'}")
    if runtime.metrics_port is not None:
        where = _url_host(runtime.metrics_host)
        click.echo(f"metrics: http://{where}:{runtime.metrics_port}/metrics")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        click.echo("shutting down")
        runtime.shutdown(timeout=shutdown_timeout)
        click.echo("stopped")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--app",
    "target",
    required=True,
    metavar="MODULE:RUNTIME",
    help="The WorkflowRuntime whose registered workflows replay the histories.",
)
def replay(files: tuple[str, ...], target: str) -> None:
    """Replay history files (from `treadle workflow export`) against today's code.

    Prints OK or the first divergence of each; exits 1 if any diverges."""
    replayer = Replayer(_load_runtime(target))
    try:
        report = replayer.replay_files(files)
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for result in report.results:
        name = result.source or result.instance_id
        click.echo(f"OK  {name}" if result.ok else f"DIVERGED  {name}: {result.divergence}")
    failures = len(report.failures)
    click.echo(f"{len(report.results) - failures} OK, {failures} diverged")
    if failures:
        raise SystemExit(1)


def _load_runtime(target: str) -> WorkflowRuntime:
    try:
        return load_runtime(target)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="MODULE:RUNTIME") from exc


# ---- output ------------------------------------------------------------------------------
def _require_state(client: WorkflowClient, instance_id: str) -> WorkflowState:
    state = client.get_workflow_state(instance_id)
    if state is None:
        raise _not_found(instance_id)
    return state


def _require_unfinished(client: WorkflowClient, instance_id: str, why: str) -> None:
    """Fail (exit 1) if the instance is unknown or has already finished."""
    state = _require_state(client, instance_id)
    if state.runtime_status in _FINISHED:
        raise click.ClickException(
            f"workflow {instance_id!r} has already finished ({state.runtime_status.name}); {why}"
        )


def _not_found(instance_id: str) -> WorkflowNotFoundError:
    return WorkflowNotFoundError(
        f"no workflow instance with id {instance_id!r}; "
        "check the id (list them with `treadle workflow list`)"
    )


def _echo_state(state: WorkflowState, fmt: str) -> None:
    if fmt == "json":
        _echo_json(state.to_json())
        return
    failure = state.failure_details
    rows = [
        ["instance_id", state.instance_id],
        ["name", state.name],
        ["status", state.runtime_status.name],
        ["created", _time(state.created_at)],
        ["updated", _time(state.last_updated_at)],
        ["input", state.serialized_input or ""],
        ["output", state.serialized_output or ""],
        ["custom_status", state.serialized_custom_status or ""],
        ["failure", "" if failure is None else f"{failure.error_type}: {failure.message}"],
        ["waiting", state.waiting_reason or ""],
    ]
    optional = ("custom_status", "failure", "waiting")
    _echo_table(None, [[f"{k}:", v] for k, v in rows if v or k not in optional])


def _event_row(event: HistoryEvent, instance_id: str) -> list[str]:
    data = event_to_dict(event)
    if data.get("instance_id") == instance_id:
        del data["instance_id"]
    ids = [f"#{event.event_id}"] if event.event_id >= 0 else []
    ids += [f"->#{data[k]}" for k in ("task_scheduled_id", "timer_id") if k in data]
    name = " ".join(str(data[k]) for k in ("name", "instance_id") if k in data)
    failure = data.get("failure")
    version = data.get("version")
    if failure is not None:
        payload = f"{failure['error_type']}: {failure['message']}"
    elif version is not None:  # a turn's workflow version and new patches
        parts = [f"version {version['name']}"] if version.get("name") else []
        if version.get("patches"):
            parts.append("patches " + ", ".join(version["patches"]))
        payload = "; ".join(parts)
    else:
        keys = ("status", "input", "result", "fire_at", "reason", "description")
        payload = " ".join(str(data[k]) for k in keys if k in data)
    payload = payload.replace("\n", "\\n")
    if len(payload) > PAYLOAD_WIDTH:
        payload = payload[: PAYLOAD_WIDTH - 3] + "..."
    return [_time(event.timestamp, ms=True), event.KIND, " ".join(ids), name, payload]


def _time(value: datetime, *, ms: bool = False) -> str:
    text = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if ms else text[:-7]


def _echo_table(headers: list[str] | None, rows: list[list[str]]) -> None:
    lines = ([headers] if headers else []) + rows
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))] if lines else []
    for line in lines:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _echo_json(value: Any) -> None:
    click.echo(codec.dumps(value))


# ---- serve (the Dapr sidecar) ------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--grpc-port",
    default=50001,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="gRPC port for the Dapr SDKs (0: a free port).",
)
@click.option(
    "--http-port",
    default=3500,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTP port for the Dapr workflow API (0: a free port).",
)
@click.option("--no-http", is_flag=True, help="Serve gRPC only.")
@click.option(
    "--app",
    metavar="MODULE:RUNTIME",
    help="Run the workflows and activities registered on this runtime in-process.",
)
@click.option(
    "--app-id",
    help="The app this sidecar serves (Dapr's app id; apps share the store): it runs that "
    "app's work only. Default: $TREADLE_APP_ID, else $APP_ID, else none.",
)
@click.option(
    "--max-payload-bytes",
    default=4 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest request accepted (gRPC message or HTTP body).",
)
@click.option(
    "--shutdown-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to let running activities finish on SIGINT/SIGTERM.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Also serve Prometheus metrics on this port at /metrics (0: a free port), besides "
    "the HTTP API's /metrics (the only place with --no-http).",
)
@click.option(
    "--metrics-host",
    help="Address to serve --metrics-port on. Default: --host.",
)
@click.option(
    "--http-read-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds an HTTP client may go without sending a byte of its request before the "
    "connection is closed.",
)
@click.option(
    "--tracing",
    is_flag=True,
    help="Emit OpenTelemetry spans of runs, activities and timers to the global tracer "
    "provider (configure it with opentelemetry-instrument or in --app; needs treadle[otel]).",
)
@click.option(
    "--activity-limit",
    "activity_limits",
    multiple=True,
    metavar="NAME=N",
    help="At most N tasks of the activity NAME (run by the SDK workers) at once, across every "
    "worker of the store; repeat for more activities.",
)
@_LOG_LEVEL
@_LOG_FORMAT
@pass_session
def serve(
    session: Session,
    host: str,
    grpc_port: int,
    http_port: int,
    no_http: bool,
    app: str | None,
    app_id: str | None,
    max_payload_bytes: int,
    shutdown_timeout: float,
    metrics_port: int | None,
    metrics_host: str | None,
    http_read_timeout: float,
    tracing: bool,
    activity_limits: tuple[str, ...],
    log_level: str,
    log_format: str,
) -> None:
    """Serve as a Dapr workflow sidecar for the official Dapr SDKs, until SIGINT or SIGTERM.

    Set TREADLE_API_TOKEN or DAPR_API_TOKEN to require that token on every call.
    Prints "treadle serve: grpc HOST:PORT http HOST:PORT" once listening."""
    from treadle.server.serve import ServeOptions, run_server

    configure_logging(log_level, log_format)
    options = ServeOptions(
        db=session.db,
        host=host,
        grpc_port=grpc_port,
        http_port=None if no_http else http_port,
        app=app,
        app_id=app_id,
        max_payload_bytes=max_payload_bytes,
        shutdown_timeout_s=shutdown_timeout,
        http_read_timeout_s=http_read_timeout,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        tracing=tracing,
        activity_limits=tuple(_activity_limit(text) for text in activity_limits),
    )
    try:
        run_server(options, echo=click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


def _url_host(host: str) -> str:
    """``host`` as written in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _activity_limit(text: str) -> tuple[str, int]:
    """``NAME=N`` of ``--activity-limit``, checked."""
    name, _, count = text.rpartition("=")
    if not name or not count.isdigit() or int(count) < 1:
        raise InvalidInputError(
            f"--activity-limit {text!r}: write NAME=N, an activity name and a whole number "
            "of 1 or more (such as send_mail=5)"
        )
    return name, int(count)


# ---- dashboard ----------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTP port (0: a free port).",
)
@pass_session
def dashboard(session: Session, host: str, port: int) -> None:
    """Serve the web dashboard of the store alone (no gRPC, no workers), until SIGINT or
    SIGTERM. `treadle serve` serves it too, at /.

    Set TREADLE_API_TOKEN or DAPR_API_TOKEN to have it ask for that token.
    Prints "treadle dashboard: http://HOST:PORT/" once listening."""
    from treadle.server.dashboard_server import run_dashboard

    missing = _missing_store(session.db)
    if missing is not None:
        raise click.ClickException(missing)
    try:
        run_dashboard(session.db, host=host, port=port, echo=click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


# ---- --db after any subcommand -------------------------------------------------------------
def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """A subcommand's ``--db`` overrides the one given before it (or the default)."""
    session = ctx.find_object(Session)
    if session is not None and value is not None:
        session.db = value


def _accept_db(group: click.Group) -> None:
    """Give every subcommand of ``group`` (recursively) a ``--db`` option of its own, so
    ``treadle serve --db URL`` works as ``treadle --db URL serve`` does."""
    for command in group.commands.values():
        command.params.append(
            click.Option(
                ["--db"],
                metavar="URL",
                expose_value=False,
                callback=_set_db,
                help="Store URL (as `treadle --db`).",
            )
        )
        if isinstance(command, click.Group):
            _accept_db(command)


_accept_db(main)

if __name__ == "__main__":
    main()
