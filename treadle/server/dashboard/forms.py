"""Reading the dashboard's forms (``application/x-www-form-urlencoded``) with the standard
library, with a size limit."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

__all__ = ["MAX_FORM_BYTES", "Form", "FormTooLarge", "read_form"]

MAX_FORM_BYTES = 1024 * 1024
"""A larger form body is refused (an event's data or a rerun's input is in it)."""


class Form:
    """A submitted form's fields, in order."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str) -> str | None:
        """The first value of field ``name`` (None if absent)."""
        return next((v for k, v in self.pairs if k == name), None)

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value), in order."""
        return list(self.pairs)


class FormTooLarge(Exception):
    """The form's body is over :data:`MAX_FORM_BYTES`."""


async def read_form(request: Request) -> Form:
    """The request's form fields (none for a body that is not a URL-encoded form).

    Raises:
        FormTooLarge: the body is over :data:`MAX_FORM_BYTES`.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge(f"the form is larger than {MAX_FORM_BYTES} bytes")
    if kind != "application/x-www-form-urlencoded":
        return Form([])
    return Form(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
