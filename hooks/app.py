"""Routes only: parse a hook request, call desired(), encode. ASGI app: ``hooks.app:app``."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hooks.desired import desired, profile_owner, related_rules, served
from hooks.identity import namespace_annotations, namespace_labels, resolve
from hooks.request import parse_customize, parse_sync
from service import config as configuration
from service.http import EXCEPTION_HANDLERS, ClientError, json_response, probe_routes, read_request
from service.metrics import RequestMetrics

log = logging.getLogger(__name__)


def create_app(config: configuration.Config) -> Starlette:
    metrics = RequestMetrics("kfext_hook", ("hook", "outcome"))

    async def sync(request: Request) -> Response:
        with metrics.timed("sync"):
            hook = await read_request(request, parse_sync, lambda: metrics.count("sync", "rejected"))
            identity = resolve(config, hook.identity_override)
            try:
                attachments = (
                    []
                    if hook.finalizing
                    else desired(
                        hook.namespace,
                        hook.profile,
                        hook.types,
                        config,
                        header_form=hook.header_form,
                        identity=identity,
                        on_ambient=hook.on_ambient,
                        envoy_filter_observed=hook.envoy_filter_observed,
                    )
                )
            except ClientError:
                metrics.count("sync", "rejected")
                raise
            answer: dict[str, object] = {"attachments": attachments}
            if hook.finalizing:
                # Nothing may be created in a terminating namespace; report done once all is gone.
                answer["finalized"] = hook.observed == 0
            else:
                is_served = served(hook.namespace, profile_owner(hook.profile), config)
                annotations = namespace_annotations(identity, hook.on_ambient, hook.notice, served=is_served)
                if annotations is not None:
                    answer["annotations"] = annotations
                labels = namespace_labels(identity, hook.mode_label, served=is_served)
                if labels is not None:
                    answer["labels"] = labels
            metrics.count("sync", "ok")
            log.info(
                "sync",
                extra={
                    "namespace": hook.namespace,
                    "profile": hook.profile is not None,
                    "observed": hook.observed,
                    "desired": len(attachments),
                    "identity_mode": identity.mode,
                },
            )
            return json_response(answer)

    async def customize(request: Request) -> Response:
        with metrics.timed("customize"):
            namespace = await read_request(
                request, parse_customize, lambda: metrics.count("customize", "rejected")
            )
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
