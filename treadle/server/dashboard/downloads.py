"""The dashboard's downloads: an instance's history as JSON, its graph as SVG."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from treadle.core.visual import build_graph, fold, render_graph_svg
from treadle.server.dashboard import views
from treadle.server.dashboard.pages import Pages

__all__ = ["Downloads"]


@dataclass
class Downloads:
    """The download handlers of one dashboard."""

    pages: Pages

    async def history(self, request: Request) -> Response:
        """``/ui/instances/{id}/history.json``: every event of the current run."""
        iid = request.path_params["instance_id"]
        loaded = await run_in_threadpool(self.pages.load, iid)
        if loaded is None:
            return Response(f"no instance {iid!r}", status_code=404, media_type="text/plain")
        body = views.as_json_download(loaded[1])
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{_file_name(iid)}.json"'},
        )

    async def graph(self, request: Request) -> Response:
        """``/ui/instances/{id}/graph.svg``: the graph as a file."""
        iid = request.path_params["instance_id"]
        loaded = await run_in_threadpool(self.pages.load, iid)
        if loaded is None:
            return Response(f"no instance {iid!r}", status_code=404, media_type="text/plain")
        svg = render_graph_svg(build_graph(fold(loaded[1])))
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={"Content-Disposition": f'attachment; filename="{_file_name(iid)}.svg"'},
        )


def _file_name(instance_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in instance_id)[:100]
