"""Whether this process is draining: told to stop, still serving while the cluster stops routing to it.

One per process, because the server that receives SIGTERM (``service.serve``) and the app that answers
``/readyz`` (``service.http.probe_routes``) are separate objects that uvicorn joins only by an import string.
"""

from __future__ import annotations

import time


class Draining:
    """The moment a drain began, if it has: readiness then fails and every answer closes its connection."""

    def __init__(self) -> None:
        self.since: float | None = None

    @property
    def started(self) -> bool:
        return self.since is not None

    def start(self) -> None:
        """Begin draining now (once: a repeated call keeps the first moment)."""
        if self.since is None:
            self.since = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the drain began (0 before it has)."""
        return 0.0 if self.since is None else time.monotonic() - self.since


THIS_PROCESS = Draining()
"""The drain of this process, shared by its server and its apps' readiness."""
