"""The dashboard's pages: the instance list and an instance's page, with their live parts.

Every read goes through the client's :class:`~treadle.client.InstanceOperations` (in the
thread pool: the store blocks); the pictures come from the pure model in
:mod:`treadle.core.visual`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from treadle.client import InstanceOperations, WorkflowState, WorkflowStatus
from treadle.core.history import ExecutionStarted, HistoryEvent
from treadle.core.visual import (
    build_graph,
    build_timeline,
    fold,
    render_graph_svg,
    render_timeline_svg,
)
from treadle.core.visual.awaiting import awaited_events
from treadle.errors import InvalidInputError
from treadle.server.dashboard import views
from treadle.server.dashboard.cache import HistoryCache
from treadle.server.dashboard.filters import STATUSES, ListFilters
from treadle.server.dashboard.security import Guard
from treadle.store.base import InstancePage

__all__ = ["Pages", "WorkflowLookup", "instance_url"]

WorkflowLookup = Callable[[str], Any]
"""Gives the code registered for a workflow name (None if this process has none)."""
VIEWS = ("compact", "full", "graph", "timeline", "steps")


def instance_url(instance_id: str, **query: object) -> str:
    """The path of an instance's page (with a query)."""
    path = f"/ui/instances/{quote(instance_id, safe='')}"
    pairs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items() if v != "")
    return f"{path}?{pairs}" if pairs else path


@dataclass
class Pages:
    """The page handlers of one dashboard."""

    ops: InstanceOperations
    env: Environment
    guard: Guard
    lookup: WorkflowLookup | None
    histories: HistoryCache = field(default_factory=HistoryCache)

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        """Render a template with the values every page needs."""
        body = self.env.get_template(template).render(
            csrf=self.guard.csrf_token,
            needs_login=self.guard.needs_login,
            instance_url=instance_url,
            show_time=views.show_time,
            notice=request.query_params.get("notice", ""),
            error=request.query_params.get("error", ""),
            **values,
        )
        return HTMLResponse(body, status_code=status)

    # ---- the list ----------------------------------------------------------------------
    async def list_page(self, request: Request) -> Response:
        """``/``: filters, counts per name and status, a page of instances."""
        return self.render(request, "list.html", **await self._list_values(request))

    async def list_live(self, request: Request) -> Response:
        """The list's live part (counts and rows), polled by the page."""
        return self.render(request, "list_live.html", **await self._list_values(request))

    async def _list_values(self, request: Request) -> dict[str, Any]:
        filters = ListFilters.parse(request.query_params)
        page, counts, problem = await run_in_threadpool(self._read_list, filters)
        states = [WorkflowState.from_record(r, fetch_payloads=False) for r in page.instances]
        return {
            "filters": filters,
            "states": states,
            "next_token": page.next_cursor,
            "counts": counts,
            "statuses": STATUSES,
            "problems": [*filters.problems, *([problem] if problem else [])],
            "live_query": filters.query(page_token=filters.page_token),
        }

    def _read_list(
        self, filters: ListFilters
    ) -> tuple[InstancePage, dict[str, dict[WorkflowStatus, int]] | None, str | None]:
        try:
            page = self.ops.list_instances(
                statuses=[s.to_orchestration_status() for s in filters.statuses],
                name=filters.name or None,
                created_from=filters.created_from,
                created_to=filters.created_to,
                page_size=filters.limit,
                continuation_token=filters.page_token or None,
                id_prefix=filters.prefix or None,
            )
            problem = None
        except InvalidInputError as exc:
            page, problem = InstancePage([]), str(exc)
        counts = self.ops.count_by_name()
        return page, counts, problem

    # ---- an instance -------------------------------------------------------------------
    async def instance_page(self, request: Request) -> Response:
        """``/ui/instances/{id}``: state, waiting panel, history views, pictures, actions."""
        iid = request.path_params["instance_id"]
        loaded = await run_in_threadpool(self.load, iid)
        if loaded is None:
            return self.render(request, "missing.html", status=404, instance_id=iid)
        state, history = loaded
        query = request.query_params
        view = query.get("view", "compact")
        view = view if view in VIEWS else "compact"
        values = self._instance_values(state, history)
        values.update(view=view, views=VIEWS)
        values.update(
            await run_in_threadpool(functools.partial(self._view_values, view, query, values))
        )
        return self.render(request, "instance.html", **values)

    async def instance_live(self, request: Request) -> Response:
        """The instance page's live part (state and waiting panel), polled by the page."""
        loaded = await run_in_threadpool(self.load, request.path_params["instance_id"])
        if loaded is None:
            return HTMLResponse('<p class="gone" data-finished="1">This instance is gone.</p>')
        return self.render(request, "instance_live.html", **self._instance_values(*loaded))

    def load(self, instance_id: str) -> tuple[WorkflowState, list[HistoryEvent]] | None:
        """The instance's state and history (None if there is no such instance)."""
        try:
            record = self.ops.get(instance_id)
        except InvalidInputError:
            return None
        if record is None:
            return None
        return WorkflowState.from_record(record), self.histories.get(record, self.ops.get_history)

    def _instance_values(self, state: WorkflowState, history: list[HistoryEvent]) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        steps = fold(history)
        finished = state.runtime_status in _FINISHED
        awaited = None if finished else self._awaited(state, history)
        steps.awaited_events = awaited or []
        children = [s.child_instance_id for s in steps.steps if s.child_instance_id]
        return {
            "state": state,
            "history": history,
            "steps": steps,
            "now": now,
            "finished": finished,
            "children": children[:50],
            "more_children": max(0, len(children) - 50),
            "waiting": [] if finished else views.waiting_items(steps, now, awaited),
            "awaited_known": awaited is not None,
            "pretty": views.pretty_json,
            "parent_id": _parent_id(history),
            "rerun_points": views.rerun_points(history) if finished else [],
        }

    def _awaited(self, state: WorkflowState, history: list[HistoryEvent]) -> list[str] | None:
        code = self.lookup(state.name) if self.lookup is not None else None
        if code is None:
            return None
        return awaited_events(code, history, instance_id=state.instance_id)

    def _view_values(self, view: str, query: Any, base: dict[str, Any]) -> dict[str, Any]:
        history: list[HistoryEvent] = base["history"]
        steps = base["steps"]
        now = base["now"]
        page = _int(query.get("page"), 0)
        if view == "compact":
            paging = views.Paging.of(len(steps.steps), page)
            return {"paging": paging, "rows": views.step_rows(steps, paging, now)}
        if view == "full":
            paging = views.Paging.of(len(history), page)
            return {"paging": paging, "rows": views.event_rows(history, paging)}
        if view == "graph":
            return {"svg": render_graph_svg(build_graph(steps, now=now), link=instance_url)}
        if view == "timeline":
            return {"svg": render_timeline_svg(build_timeline(steps, now=now))}
        return self._step_values(base, _int(query.get("at"), len(history)), page)

    def _step_values(self, base: dict[str, Any], at: int, page: int) -> dict[str, Any]:
        """The run after its first ``at`` events: what it had done and what it awaited."""
        history: list[HistoryEvent] = base["history"]
        state: WorkflowState = base["state"]
        at = min(max(1, at), max(1, len(history)))
        prefix = history[:at]
        steps = fold(prefix)
        awaited = self._awaited(state, prefix) if not steps.status.is_terminal else []
        steps.awaited_events = awaited or []
        moment = prefix[-1].timestamp if prefix else base["now"]
        paging = views.Paging.of(len(history), page if page else (at - 1) // views.PAGE_SIZE)
        return {
            "at": at,
            "at_event": prefix[-1] if prefix else None,
            "paging": paging,
            "rows": views.event_rows(history, paging),
            "done": [views.step_row(s, moment) for s in steps.done()][-100:],
            "awaiting": views.waiting_items(steps, moment, awaited),
            "step_status": steps.status.name,
            "svg": render_graph_svg(build_graph(steps, now=moment), link=instance_url),
        }


_FINISHED = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.TERMINATED})


def _parent_id(history: list[HistoryEvent]) -> str | None:
    for event in history[:3]:
        if isinstance(event, ExecutionStarted) and event.parent is not None:
            return event.parent.instance_id
    return None


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
