"""Routes only: parse a hook request, call desired(), encode. ASGI app: ``hooks.app:app``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hooks.desired import desired, related_rules
from hooks.request import parse_customize, parse_sync
from service import config as configuration
from service.http import EXCEPTION_HANDLERS, ClientError, json_response, probe_routes, read_json
from service.metrics import RequestMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")


def create_app(config: configuration.Config) -> Starlette:
    metrics = RequestMetrics("kfext_hook", ("hook", "outcome"))

    async def parsed(request: Request, hook: str, parse: Callable[[object], T]) -> T:
        """The request read by `parse`; a rejected one is counted before it becomes a 4xx."""
        try:
            return parse(await read_json(request))
        except ClientError:
            metrics.count(hook, "rejected")
            raise

    async def sync(request: Request) -> Response:
        with metrics.timed("sync"):
            hook = await parsed(request, "sync", parse_sync)
            attachments = (
                []
                if hook.finalizing
                else desired(hook.namespace, hook.profile, hook.types, config, header_form=hook.header_form)
            )
            answer: dict[str, object] = {"attachments": attachments}
            if hook.finalizing:
                # Nothing may be created in a terminating namespace; report done once all is gone.
                answer["finalized"] = hook.observed == 0
            metrics.count("sync", "ok")
            log.info(
                "sync",
                extra={
                    "namespace": hook.namespace,
                    "profile": hook.profile is not None,
                    "observed": hook.observed,
                    "desired": len(attachments),
                },
            )
            return json_response(answer)

    async def customize(request: Request) -> Response:
        with metrics.timed("customize"):
            namespace = await parsed(request, "customize", parse_customize)
            metrics.count("customize", "ok")
            return json_response({"relatedResources": related_rules(namespace)})

    routes = [
        Route("/sync", sync, methods=["POST"]),
        Route("/finalize", sync, methods=["POST"]),
        Route("/customize", customize, methods=["POST"]),
        *probe_routes(metrics.registry),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)


app = create_app(configuration.load())
