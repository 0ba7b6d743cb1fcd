"""The instance list's filters, read from and written to the URL (so a view is a link)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from treadle.client import WorkflowStatus

__all__ = ["DEFAULT_LIMIT", "STATUSES", "ListFilters"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
STATUSES = [s for s in WorkflowStatus if s is not WorkflowStatus.UNKNOWN]


@dataclass
class ListFilters:
    """What the instance list shows: statuses, name, created range, id prefix, page.

    Attributes:
        statuses: only these (any if empty).
        name: only this workflow.
        created_from: created at or after (UTC).
        created_to: created before (UTC).
        prefix: only ids starting with this.
        page_token: where the page starts (from the previous page).
        limit: rows per page.
        problems: what was wrong in the URL (those filters are left out).
    """

    statuses: list[WorkflowStatus] = field(default_factory=list)
    name: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    prefix: str = ""
    page_token: str = ""
    limit: int = DEFAULT_LIMIT
    problems: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, query: QueryParams) -> ListFilters:
        """Read the filters from a query string; a bad value is reported, not fatal."""
        out = cls(name=query.get("name", "").strip(), prefix=query.get("prefix", "").strip())
        out.page_token = query.get("page", "")
        for value in query.getlist("status"):
            status = WorkflowStatus.__members__.get(value.strip().upper())
            if status is None or status is WorkflowStatus.UNKNOWN:
                out.problems.append(f"unknown status {value!r}")
            elif status not in out.statuses:
                out.statuses.append(status)
        out.created_from = out._time(query.get("created_from", ""), "created from")
        out.created_to = out._time(query.get("created_to", ""), "created to")
        limit = query.get("limit", "")
        if limit:
            if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT:
                out.limit = int(limit)
            else:
                out.problems.append(f"rows per page {limit!r}: use 1 to {MAX_LIMIT}")
        return out

    def _time(self, value: str, what: str) -> datetime | None:
        value = value.strip()
        if not value:
            return None
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.problems.append(f"{what} {value!r} is not a time (e.g. 2024-05-01T12:00)")
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def query(self, *, page_token: str | None = None, **changes: object) -> str:
        """The query string of these filters (with a page token, and fields changed)."""
        values: dict[str, object] = {
            "status": [s.name for s in self.statuses],
            "name": self.name,
            "created_from": _time_text(self.created_from),
            "created_to": _time_text(self.created_to),
            "prefix": self.prefix,
            "limit": self.limit if self.limit != DEFAULT_LIMIT else "",
        }
        values.update(changes)
        if page_token:
            values["page"] = page_token
        pairs: list[tuple[str, str]] = []
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                if item not in ("", None):
                    pairs.append((key, str(item)))
        return urlencode(pairs)

    def input_time(self, which: str) -> str:
        """A time filter as a ``datetime-local`` input shows it."""
        moment = self.created_from if which == "from" else self.created_to
        return _time_text(moment)


def _time_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
