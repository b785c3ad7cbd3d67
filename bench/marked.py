"""The webhook and the ceiling as served for counting instructions: two extra routes mark the stretch.

``GET /zero`` and ``GET /dump`` call ``bench.instructions``' zero_counters and dump_counters, the
functions it gives callgrind as its zero and dump triggers, so the count of a server under
callgrind covers what lies between two requests: TLS, HTTP, the app and the audit line, as served.
ASGI apps: ``bench.marked:webhook`` and ``bench.marked:ceiling``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.ceiling import app as ceiling_app
from bench.hooks import App, Message
from bench.instructions import dump_counters, zero_counters
from webhook.app import app as webhook_app

MARKS: dict[str, Callable[[], object]] = {"/zero": zero_counters, "/dump": dump_counters}


def marked(app: App) -> App:
    """``app`` with the two marking routes in front of it."""

    async def serve(
        scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        mark = MARKS.get(scope["path"]) if scope["type"] == "http" else None
        if mark is None:
            await app(scope, receive, send)
            return
        mark()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    return serve


webhook = marked(webhook_app)
ceiling = marked(ceiling_app)
