"""How treadle marks a span failed: the one place both its span paths (the OpenTelemetry
API's and :mod:`treadle.runtime.tracing_spans`' light spans) take it from. Needs only
``opentelemetry-api``."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode

from treadle.errors import FailureDetails

__all__ = ["fail_span"]


def fail_span(span: Span, failure: FailureDetails | None) -> None:
    """Mark ``span`` failed with ``failure``: status ERROR with its type and message, and an
    ``exception`` event carrying them."""
    error_type = failure.error_type if failure is not None else ""
    message = failure.message if failure is not None else ""
    span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
    span.add_event("exception", {"exception.type": error_type, "exception.message": message})
