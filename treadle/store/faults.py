"""A test-only fault hook in the stores' write path (unset, it costs one attribute read).

When :data:`hook` is set, each store calls it around every commit it makes: with ``"before"``
just before the COMMIT (raising there rolls the transaction back) and with ``"after"`` once the
COMMIT returned (raising there is "committed, but the caller saw an error"). Whatever it
raises propagates as if the database had raised it. The reliability suite sets it in its
worker processes to prove that a failure at any point of a commit loses and repeats nothing;
nothing else should.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["hook"]

hook: Callable[[str], None] | None = None
"""Called with ``"before"`` or ``"after"`` around each commit, when set (tests only)."""
