"""The dashboard's guards: the API token kept in a cookie, protection of actions from other
sites, and the headers that keep a page from running anything but its own script.

- With an API token, the dashboard asks for it once (``/ui/login``) and keeps a value
  derived from it (never the token) in an ``HttpOnly``, ``SameSite=Strict`` cookie; every
  page and action needs that cookie.
- Every POST must carry the form's CSRF token (a value only pages of this server hold), and
  is refused when the browser says it came from another site (``Origin``,
  ``Sec-Fetch-Site``), token or not, and whether an API token is set or not: a dashboard on
  a loopback port is still reachable from any page the user opens.
- Without an API token, only requests addressed to ``localhost`` or to an IP address are
  answered: a page of another site cannot reach the dashboard by pointing a host name of
  its own at the dashboard's address (DNS rebinding), which would make it same-origin.
  Behind a host name, set a token.
- Every response gets a Content-Security-Policy that allows scripts, styles and images from
  the server alone (no inline script), and forbids framing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["COOKIE", "SECURITY_HEADERS", "Guard"]

COOKIE = "treadle_session"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Guard:
    """Checks sessions and CSRF tokens for one dashboard (one secret per process).

    Args:
        api_token: the token to ask for (None or empty: pages are open, actions still need
            the CSRF token).
    """

    def __init__(self, api_token: str | None) -> None:
        self._token = api_token or None
        self._secret = secrets.token_bytes(32)
        self.csrf_token = self._derive(b"csrf")
        """The value every form of this server carries in its ``csrf`` field."""

    @property
    def needs_login(self) -> bool:
        """Whether an API token is set."""
        return self._token is not None

    def session_value(self) -> str:
        """The cookie's value once logged in (derived from the secret and the token)."""
        return self._derive(b"session:" + (self._token or "").encode())

    def is_logged_in(self, request: Request) -> bool:
        """Whether the request may see pages (no token set, or the right cookie)."""
        if self._token is None:
            return True
        sent = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(sent.encode(), self.session_value().encode())

    def host_refusal(self, request: Request) -> str | None:
        """Why a request is refused for its ``Host`` (None if it is not): without a token,
        only ``localhost`` and IP addresses are answered."""
        if self._token is not None:
            return None
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0][1:]
        if name.lower() == "localhost" or _is_ip(name):
            return None
        return (
            f"this dashboard has no API token, so it answers only requests to localhost or "
            f"an IP address, not to {name!r}; start the server with TREADLE_API_TOKEN set to "
            "serve it under a host name"
        )

    def check_token(self, given: str) -> bool:
        """Whether ``given`` is the API token (in constant time)."""
        return self._token is not None and hmac.compare_digest(given.encode(), self._token.encode())

    def cross_site_reason(self, request: Request, form_token: str | None) -> str | None:
        """Why a POST is refused as possibly cross-site, or None if it is not."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"the browser says the request came from another site ({site})"
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            parts = urlsplit(origin)
            if parts.netloc != request.headers.get("host", ""):
                return f"the request came from {origin}, not from this dashboard"
        elif origin == "null":
            return "the request came from an opaque origin"
        if form_token is None or not hmac.compare_digest(
            form_token.encode(), self.csrf_token.encode()
        ):
            return "the form's CSRF token is missing or wrong (reload the page and try again)"
        return None

    def login_cookie(self, response: Response) -> None:
        """Set the session cookie on ``response``."""
        response.set_cookie(
            COOKIE,
            self.session_value(),
            httponly=True,
            samesite="strict",
            path="/",
        )

    def _derive(self, what: bytes) -> str:
        return hmac.new(self._secret, what, hashlib.sha256).hexdigest()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
