"""Routes only: parse the AdmissionReview, run the mutations for its kind, encode.

The path says the namespace's identity mode: the MutatingWebhookConfiguration sends namespaces the hooks
labelled ``token`` or ``both`` to ``/mutate/token`` and every other to ``/mutate`` (header identity, no
token), so the webhook reads no setting and makes no API call to know it. ASGI app: ``webhook.app:app``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import config as configuration
from service.http import EXCEPTION_HANDLERS, json_response, probe_routes, read_request
from service.logs import info_event
from service.metrics import RequestMetrics
from webhook import review as admission
from webhook.mutate import Result, run

log = logging.getLogger(__name__)

KINDS = frozenset({"Pod", "Job"})
"""Kinds with mutations; any other is counted as ``other`` to keep the metric's labels bounded."""
IDENTITY_PATHS = {"/mutate": "header", "/mutate/token": "token"}
"""The identity mode each path's reviews are mutated in (``both`` mutates as ``token``: a token each)."""


def _log(review: admission.Review, result: Result, changed: str) -> None:
    if result.failed:
        for failure in result.failures:
            if failure.status == "error":
                error = failure.error
                log.error(
                    "mutation failed; object admitted unchanged",
                    exc_info=(type(error), error, error.__traceback__),
                    extra=_context(review) | {"mutation": failure.mutation},
                )
    if (result.ops or result.warnings) and log.isEnabledFor(logging.INFO):
        # The audit line: what was changed in which object, and why not where it was not.
        fields = _context(review)
        fields["mutations"] = changed
        fields["operations"] = len(result.ops)
        fields["warnings"] = result.warnings
        fields["dry_run"] = review.dry_run
        info_event(log, "admitted", fields)


def _context(review: admission.Review) -> dict[str, Any]:
    return {"kind": review.kind, "namespace": review.namespace, "object": review.name, "uid": review.uid}


def create_app(config: configuration.Config) -> Starlette:
    # Labels: kind (Pod, Job, other); mutation (those that changed the object, joined by "+", or
    # "none"); outcome (patched, unchanged, error, rejected).
    metrics = RequestMetrics("kfext_webhook", ("kind", "mutation", "outcome"))

    def mutate_in(mode: str) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint for namespaces in identity ``mode``: its configuration says so, nothing else."""
        mode_config = dataclasses.replace(config, identity_mode=mode)

        async def mutate(request: Request) -> Response:
            return await review_and_mutate(request, mode_config)

        return mutate

    async def review_and_mutate(request: Request, mode_config: configuration.Config) -> Response:
        review = await read_request(
            request, admission.parse, lambda: metrics.count("unknown", "none", "rejected")
        )
        kind = review.kind if review.kind in KINDS else "other"
        start = time.perf_counter()
        try:
            # Only CREATE is registered; a patch to an existing Pod's containers would be refused anyway.
            if review.obj is None or review.operation != "CREATE":
                metrics.count(kind, "none", "unchanged")
                return json_response(admission.answer(review, []))
            result = run(review.obj, review.kind, mode_config)
            changed = "+".join(result.changed) or "none"
            _log(review, result, changed)
            if result.failed:
                metrics.count(kind, "none", "error")
            else:
                metrics.count(kind, changed, "patched" if result.ops else "unchanged")
            return json_response(admission.answer(review, result.ops, result.warnings))
        finally:
            metrics.observe(kind, start)

    routes = [
        *(Route(path, mutate_in(mode), methods=["POST"]) for path, mode in IDENTITY_PATHS.items()),
        *probe_routes(metrics.registry),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)


app = create_app(configuration.load())
