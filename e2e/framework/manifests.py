"""Make the project's own manifests run against local processes, changing only the service references.

In a cluster, Metacontroller reaches the hooks and kube-apiserver reaches the webhook through a Service in
front of a Deployment. Here both run as local uvicorn processes on 127.0.0.1, which a Service cannot point
at (Endpoints reject loopback addresses). So, the way controller-runtime's envtest does it for webhooks:

- every Metacontroller hook ``webhook.service`` (or ``webhook.url``) becomes ``url: http://127.0.0.1:<port><path>``;
- every admission webhook ``clientConfig.service`` (or ``url``) becomes ``url: https://127.0.0.1:<port><path>``
  with ``caBundle`` set to the local CA (a cert-manager CA-injection annotation is dropped with it);
- the Services those references named, and the Deployments behind them, are dropped (nothing could run
  their pods here), and so are cert-manager objects (the harness issues the serving certificate itself).

Everything else is kept unchanged.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

METACONTROLLER_GROUP = "metacontroller.k8s.io"
HOOK_CONTROLLER_KINDS = frozenset({"DecoratorController", "CompositeController"})
ADMISSION_GROUP = "admissionregistration.k8s.io"
WEBHOOK_CONFIGURATION_KINDS = frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})
CERT_MANAGER_GROUP = "cert-manager.io"
CA_INJECTION_ANNOTATION = "cert-manager.io/inject-ca-from"

Document = dict[str, Any]


def load_documents(text: str) -> list[Document]:
    """The non-empty documents of a multi-document YAML stream (e.g. ``kubectl kustomize`` output)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def dump_documents(documents: Iterable[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)


def _group(document: Mapping[str, Any]) -> str:
    api_version = str(document.get("apiVersion", ""))
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def _local_url(base_url: str, path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    return base_url.rstrip("/") + path


def _path_of_url(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _service_key(service: Mapping[str, Any], default_namespace: str) -> tuple[str, str]:
    return (str(service.get("namespace") or default_namespace), str(service["name"]))


def localize_manifests(
    documents: Iterable[Mapping[str, Any]],
    *,
    hooks_url: str | None = None,
    webhook_url: str | None = None,
    ca_bundle_pem: bytes | None = None,
) -> list[Document]:
    """Rewrite service references to local URLs and drop what cannot run locally; see the module docstring.

    ``hooks_url`` and ``webhook_url`` are base URLs such as ``http://127.0.0.1:41234``; the path of each
    reference is appended. A document that needs a base URL (or the CA) that was not given raises
    ``ValueError``: an in-cluster reference is never left in place silently. The input is not modified.
    """
    copies: list[Document] = [copy.deepcopy(dict(d)) for d in documents]
    referenced: set[tuple[str, str]] = set()
    for document in copies:
        kind, group = document.get("kind"), _group(document)
        metadata = document.setdefault("metadata", {})
        namespace = str(metadata.get("namespace") or "default")
        if group == METACONTROLLER_GROUP and kind in HOOK_CONTROLLER_KINDS:
            for hook_name, hook in sorted((document.get("spec", {}).get("hooks") or {}).items()):
                webhook = (hook or {}).get("webhook")
                if webhook is None:
                    continue
                if hooks_url is None:
                    raise ValueError(f"{kind} {metadata.get('name')}: hook {hook_name} needs hooks_url")
                path = webhook.pop("path", None)
                if "service" in webhook:
                    referenced.add(_service_key(webhook.pop("service"), namespace))
                elif "url" in webhook and path is None:
                    path = _path_of_url(webhook["url"])
                webhook["url"] = _local_url(hooks_url, path or "/")
        elif group == ADMISSION_GROUP and kind in WEBHOOK_CONFIGURATION_KINDS:
            for webhook in document.get("webhooks") or []:
                if webhook_url is None or ca_bundle_pem is None:
                    raise ValueError(
                        f"{kind} {metadata.get('name')}: webhook {webhook.get('name')} needs "
                        "webhook_url and ca_bundle_pem"
                    )
                client_config = webhook.get("clientConfig") or {}
                if "service" in client_config:
                    service = client_config["service"]
                    referenced.add(_service_key(service, namespace))
                    path = str(service.get("path") or "/")
                else:
                    path = _path_of_url(str(client_config.get("url", "/")))
                webhook["clientConfig"] = {
                    "url": _local_url(webhook_url, path),
                    "caBundle": base64.b64encode(ca_bundle_pem).decode(),
                }
            annotations = metadata.get("annotations")
            if annotations and CA_INJECTION_ANNOTATION in annotations:
                del annotations[CA_INJECTION_ANNOTATION]
                if not annotations:
                    del metadata["annotations"]

    selectors: list[tuple[str, dict[str, str]]] = []
    dropped: set[int] = set()
    for index, document in enumerate(copies):
        metadata = document["metadata"]
        key = (str(metadata.get("namespace") or "default"), str(metadata.get("name")))
        if _group(document) == CERT_MANAGER_GROUP:
            dropped.add(index)
        elif document.get("apiVersion") == "v1" and document.get("kind") == "Service" and key in referenced:
            dropped.add(index)
            selector = (document.get("spec") or {}).get("selector") or {}
            if selector:
                selectors.append((key[0], dict(selector)))
    for index, document in enumerate(copies):
        if document.get("apiVersion") != "apps/v1" or document.get("kind") != "Deployment":
            continue
        namespace = str(document["metadata"].get("namespace") or "default")
        labels = ((document.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        if any(
            namespace == ns and all(labels.get(k) == v for k, v in selector.items())
            for ns, selector in selectors
        ):
            dropped.add(index)
    return [d for i, d in enumerate(copies) if i not in dropped]
