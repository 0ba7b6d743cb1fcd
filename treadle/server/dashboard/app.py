"""The dashboard as an ASGI app: its routes, its guards and its templates.

:func:`create_dashboard` builds it; :func:`treadle.server.http.create_app` mounts it at
``/`` beside the APIs (``treadle serve``), and ``treadle dashboard`` serves it alone. Its
pages are ``/`` (the instance list) and everything under ``/ui/``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from treadle.client import WorkflowClient
from treadle.server.dashboard.actions import Actions
from treadle.server.dashboard.downloads import Downloads
from treadle.server.dashboard.forms import FormTooLarge, read_form
from treadle.server.dashboard.pages import Pages, WorkflowLookup
from treadle.server.dashboard.security import SECURITY_HEADERS, Guard

__all__ = ["create_dashboard", "is_dashboard_path"]

_OPEN = ("/ui/login", "/ui/static/")


def is_dashboard_path(path: str) -> bool:
    """Whether the dashboard serves ``path`` (it guards those itself, with its cookie)."""
    return path == "/" or path.startswith("/ui/")


def create_dashboard(
    client: WorkflowClient,
    *,
    api_token: str | None = None,
    lookup: WorkflowLookup | None = None,
) -> Starlette:
    """Build the dashboard app.

    Args:
        client: the client whose operations every page and action goes through.
        api_token: ask for this token once and keep it in a cookie (None: open).
        lookup: the workflow code registered under a name, if this process has it; with it
            the waiting panel and the step-through show the events the code awaits.
    """
    env = Environment(
        loader=PackageLoader("treadle.server.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    guard = Guard(api_token)
    pages = Pages(client.operations, env, guard, lookup)
    actions = Actions(pages)
    downloads = Downloads(pages)
    login = _Login(pages)
    routes = [
        Route("/", pages.list_page, methods=["GET"]),
        Route("/ui/live/list", pages.list_live, methods=["GET"]),
        Route("/ui/login", login.form, methods=["GET"]),
        Route("/ui/login", login.submit, methods=["POST"]),
        Route("/ui/logout", login.logout, methods=["POST"]),
        Route("/ui/instances/{instance_id}", pages.instance_page, methods=["GET"]),
        Route("/ui/live/instances/{instance_id}", pages.instance_live, methods=["GET"]),
        Route("/ui/instances/{instance_id}/history.json", downloads.history, methods=["GET"]),
        Route("/ui/instances/{instance_id}/graph.svg", downloads.graph, methods=["GET"]),
        Route("/ui/instances/{instance_id}/{action}", actions.act, methods=["POST"]),
        Mount(
            "/ui/static",
            app=StaticFiles(packages=[("treadle.server.dashboard", "static")]),
            name="static",
        ),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=_guarded(guard))],
    )


def _guarded(
    guard: Guard,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def dispatch(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Send a visitor without the session cookie to the login page (or refuse a live
        part or a POST), and add the security headers to every response."""
        path = request.url.path
        refusal = guard.host_refusal(request)
        if refusal is not None:
            response: Response = Response(refusal, status_code=403, media_type="text/plain")
        elif not path.startswith(_OPEN) and not guard.is_logged_in(request):
            if request.method == "GET" and not path.startswith("/ui/live/"):
                target = path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(
                    f"/ui/login?next={quote(target, safe='')}", status_code=303
                )
            else:
                response = Response("log in first: open the dashboard's page", status_code=401)
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return dispatch


class _Login:
    """The token form (only when an API token is set)."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def form(self, request: Request) -> Response:
        """``GET /ui/login``: the token form."""
        return self.pages.render(
            request, "login.html", next=_safe_next(request.query_params.get("next"))
        )

    async def submit(self, request: Request) -> Response:
        """``POST /ui/login``: check the token, set the cookie, go where the visitor was
        going."""
        try:
            form = await read_form(request)
        except FormTooLarge as exc:
            return self.pages.render(request, "refused.html", status=413, reason=str(exc))
        guard = self.pages.guard
        token_field, csrf, target = form.get("token"), form.get("csrf"), form.get("next")
        reason = guard.cross_site_reason(request, csrf)
        if reason is not None:
            return self.pages.render(request, "refused.html", status=403, reason=reason)
        next_url = _safe_next(target)
        if token_field is None or not guard.check_token(token_field):
            return self.pages.render(
                request,
                "login.html",
                status=401,
                next=next_url,
                login_error="That is not the server's API token.",
            )
        response = RedirectResponse(next_url, status_code=303)
        guard.login_cookie(response)
        return response

    async def logout(self, request: Request) -> Response:
        """``POST /ui/logout``: drop the cookie."""
        try:
            form = await read_form(request)
        except FormTooLarge as exc:
            return self.pages.render(request, "refused.html", status=413, reason=str(exc))
        reason = self.pages.guard.cross_site_reason(request, form.get("csrf"))
        if reason is not None:
            return self.pages.render(request, "refused.html", status=403, reason=reason)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie("treadle_session", path="/")
        return response


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this server only."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
