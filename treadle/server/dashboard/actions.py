"""The dashboard's actions on an instance, each confirmed on a page of its own first.

A POST without ``confirmed=1`` shows what is about to happen and asks; the confirmation
posts the same form with it. Each action then calls the same
:class:`~treadle.client.InstanceOperations` method as the command line and the HTTP API:
terminate, raise an event, suspend, resume, purge, rerun from an event, start anew with
the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from treadle.client import InstanceOperations, check_json
from treadle.errors import InvalidInputError, TreadleError, WorkflowNotFoundError
from treadle.server.dashboard.forms import Form, FormTooLarge, read_form
from treadle.server.dashboard.pages import Pages, instance_url

__all__ = ["ACTIONS", "Actions"]

ACTIONS = {
    "terminate": "Terminate",
    "suspend": "Suspend",
    "resume": "Resume",
    "raise-event": "Raise event",
    "purge": "Purge",
    "rerun": "Rerun from event",
    "restart": "Start new with same input",
}
"""Each action's path segment and button text."""


@dataclass
class Actions:
    """The action handler of one dashboard."""

    pages: Pages

    @property
    def ops(self) -> InstanceOperations:
        """The operations the actions call."""
        return self.pages.ops

    async def act(self, request: Request) -> Response:
        """``POST /ui/instances/{id}/{action}``: confirm, then do it."""
        iid = request.path_params["instance_id"]
        action = request.path_params["action"]
        try:
            form = await read_form(request)
        except FormTooLarge as exc:
            return self.pages.render(request, "refused.html", status=413, reason=str(exc))
        reason = self.pages.guard.cross_site_reason(request, _field(form, "csrf"))
        if reason is not None:
            return self.pages.render(request, "refused.html", status=403, reason=reason)
        if action not in ACTIONS:
            return self.pages.render(
                request, "refused.html", status=404, reason=f"there is no action {action!r}"
            )
        if _field(form, "confirmed") != "1":
            fields = [(k, v) for k, v in form.items() if k not in ("csrf", "confirmed")]
            return self.pages.render(
                request,
                "confirm.html",
                instance_id=iid,
                action=action,
                title=ACTIONS[action],
                fields=fields,
                describe=_describe(action, iid, form),
            )
        try:
            target = await run_in_threadpool(self._do, action, iid, form)
        except TreadleError as exc:
            return _back(instance_url(iid), error=f"{ACTIONS[action]} failed: {exc}")
        return _back(target, notice=f"{ACTIONS[action]}: done.")

    def _do(self, action: str, iid: str, form: Form) -> str:
        """Run the action; return the page to go to next."""
        ops = self.ops
        match action:
            case "terminate":
                ops.terminate(iid)
            case "suspend":
                ops.suspend(iid)
            case "resume":
                ops.resume(iid)
            case "raise-event":
                data = check_json(_field(form, "event_data") or None, "the event data")
                ops.raise_event(iid, _field(form, "event_name") or "", data=data)
            case "purge":
                if ops.purge(iid) == 0:
                    raise WorkflowNotFoundError(f"no workflow instance with id {iid!r}")
                return "/"
            case "rerun":
                return instance_url(self._rerun(iid, form))
            case _:
                return instance_url(self._restart(iid))
        return instance_url(iid)

    def _rerun(self, iid: str, form: Form) -> str:
        text = _field(form, "input") or ""
        event_id = _field(form, "event_id") or "0"
        if not event_id.isdigit():
            raise InvalidInputError(f"event {event_id!r} is not an event id")
        return self.ops.rerun(
            iid,
            int(event_id),
            input=check_json(text, "the new input") if text.strip() else None,
            overwrite_input=bool(text.strip()),
        )

    def _restart(self, iid: str) -> str:
        record = self.ops.get(iid)
        if record is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {iid!r}")
        return self.ops.create(record.name, input=record.input)


def _field(form: Form, name: str) -> str | None:
    return form.get(name)


def _describe(action: str, iid: str, form: Form) -> str:
    if action == "raise-event":
        data = _field(form, "event_data") or "no data"
        return f"Raise event {_field(form, 'event_name')!r} on {iid} with {data}?"
    if action == "rerun":
        return f"Start a new instance rerunning {iid} from event {_field(form, 'event_id')}?"
    if action == "restart":
        return f"Start a new instance of {iid}'s workflow with its input?"
    if action == "purge":
        return f"Delete {iid} and its history (and its children's) for good?"
    return f"{ACTIONS[action]} {iid}?"


def _back(target: str, **message: str) -> Response:
    key, text = next(iter(message.items()))
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}{key}={quote(text, safe='')}", status_code=303)
