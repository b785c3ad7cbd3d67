"""kube-apiserver's own count of webhook calls that failed: the server side of a scenario's tally.

``apiserver_admission_webhook_rejection_count`` with ``error_type="calling_webhook_error"`` counts the calls
that could not be made or answered (k8s.io/apiserver v0.37.2 ``pkg/admission/metrics/metrics.go``);
``apiserver_admission_webhook_fail_open_count`` those a ``failurePolicy: Ignore`` webhook let through.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

REJECTIONS = "apiserver_admission_webhook_rejection_count"
FAIL_OPEN = "apiserver_admission_webhook_fail_open_count"
WEBHOOK_SUFFIX = ".kubeflow-extension.kubeflow.org"


def webhook_failures(exposition: str, suffix: str = WEBHOOK_SUFFIX) -> dict[str, float]:
    """``calling_webhook_error`` rejections and fail-open calls of the webhooks named ``*<suffix>``, each
    summed over its labels (pure)."""
    totals = {"calling_webhook_error": 0.0, "fail_open": 0.0}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if not sample.labels.get("name", "").endswith(suffix) or sample.name.endswith("_created"):
                continue
            if sample.name in (REJECTIONS, REJECTIONS + "_total"):
                if sample.labels.get("error_type") == "calling_webhook_error":
                    totals["calling_webhook_error"] += sample.value
            elif sample.name in (FAIL_OPEN, FAIL_OPEN + "_total"):
                totals["fail_open"] += sample.value
    return totals


def increase(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}
