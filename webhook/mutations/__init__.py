"""One pure function per mutation: ``(object, config) -> Mutation``; no I/O, idempotent by construction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.config import Config
from webhook.patch import Mutation

MutationFunction = Callable[[Mapping[str, Any], Config], Mutation]

ISTIO_INJECT = "sidecar.istio.io/inject"
"""Label (Istio >= 1.10 webhook selection, preferred by istiod >= 1.12) and deprecated annotation."""
