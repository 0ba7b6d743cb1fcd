"""The web dashboard: the instance list, an instance's page, its pictures and actions.

Served at ``/`` by ``treadle serve`` (beside the APIs) and by ``treadle dashboard`` (for a
store alone). Pages are rendered here from the package's templates; the only script is the
package's own ``static/dashboard.js``. See :func:`create_dashboard`.
"""

from __future__ import annotations

from treadle.server.dashboard.app import create_dashboard, is_dashboard_path

__all__ = ["create_dashboard", "is_dashboard_path"]
