"""Keeps the self-managed webhook certificate Secret and the webhook configuration's caBundle current.

Safe with any number of replicas starting at once: the Secret is created only if absent (a 409 means
another replica won, so read theirs), replaced only at the resourceVersion read (a 409 means someone
else changed it, so start over), and the caBundle patch is idempotent.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from service.certificate_rotation import TLS_CERT, TLS_KEY, Contents, plan

log = logging.getLogger(__name__)

RETIRE_AFTER_ROUNDS = 3
"""Rounds of every replica between a new serving pair and the retirement of the CA it replaces: one to
load it, two to spare for a round that failed and was retried."""


@dataclass(frozen=True)
class Target:
    namespace: str
    secret: str
    webhook_configuration: str
    dns_names: tuple[str, ...]


def _decode(secret: Any) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _encode(data: dict[str, bytes]) -> dict[str, bytes | str]:
    return {k: base64.b64encode(v).decode() for k, v in sorted(data.items())}


def _published_bundle(configuration: Any) -> bytes:
    """The caBundle every webhook of the configuration carries (b"" when they differ or have none)."""
    bundles = {base64.b64decode(w.client_config.ca_bundle or "") for w in configuration.webhooks or []}
    return bundles.pop() if len(bundles) == 1 else b""


def reconcile(
    core: Any,
    admission: Any,
    target: Target,
    now: datetime.datetime,
    retire_after: datetime.timedelta,
    attempts: int = 5,
) -> Contents:
    """One round: bring the Secret and the caBundle to what `plan()` wants; return what is in force."""
    for _ in range(attempts):
        try:
            secret = core.read_namespaced_secret(target.secret, target.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            secret = None
        current = Contents.from_data(_decode(secret)) if secret is not None else None
        configuration = admission.read_mutating_webhook_configuration(target.webhook_configuration)
        wanted = plan(
            current,
            target.dns_names,
            now,
            published=_published_bundle(configuration),
            retire_after=retire_after,
        )
        if wanted is not None:
            body = client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=target.secret,
                    namespace=target.namespace,
                    labels={"app.kubernetes.io/managed-by": "kubeflow-extension"},
                    resource_version=secret.metadata.resource_version if secret is not None else None,
                ),
                type="Opaque",
                data=_encode(wanted.to_data()),
            )
            try:
                if secret is None:
                    core.create_namespaced_secret(target.namespace, body)
                else:
                    core.replace_namespaced_secret(target.secret, target.namespace, body)
            except ApiException as error:
                if error.status in (409, 422):
                    continue  # another replica wrote first: read what it wrote
                raise
            log.info("webhook certificate secret written", extra={"secret": target.secret})
            current = wanted
        assert current is not None
        try:
            _publish_bundle(admission, target.webhook_configuration, configuration, current.bundle)
        except ApiException as error:
            if error.status in (409, 422):
                continue  # the configuration changed since it was read (another replica): read again
            raise
        return current
    raise RuntimeError(
        f"secret {target.namespace}/{target.secret} or webhook configuration {target.webhook_configuration} "
        "kept changing under us"
    )


def _publish_bundle(admission: Any, name: str, configuration: Any, bundle: bytes) -> None:
    encoded = base64.b64encode(bundle).decode()
    patch = [
        {
            "op": "replace" if w.client_config.ca_bundle else "add",
            "path": f"/webhooks/{i}/clientConfig/caBundle",
            "value": encoded,
        }
        for i, w in enumerate(configuration.webhooks or [])
        if w.client_config.ca_bundle != encoded
    ]
    if patch:
        # Guard the indexes: the patch fails if the configuration changed since it was read.
        version = {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": configuration.metadata.resource_version,
        }
        admission.patch_mutating_webhook_configuration(name, [version, *patch])
        log.info("webhook caBundle updated", extra={"configuration": name, "webhooks": len(patch)})


def write_files(contents: Contents, directory: Path) -> bool:
    """Atomically write tls.crt and tls.key if they differ; True when they changed."""
    changed = False
    for name, data in ((TLS_KEY, contents.serving.key), (TLS_CERT, contents.serving.cert)):
        path = directory / name
        if path.exists() and path.read_bytes() == data:
            continue
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
        changed = True
    return changed


def api_clients() -> tuple[Any, Any]:
    """Core and admissionregistration clients: in-cluster, else from the kubeconfig."""
    from kubernetes import config as kubeconfig

    try:
        kubeconfig.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubeconfig.ConfigException:
        kubeconfig.load_kube_config()  # type: ignore[no-untyped-call]
    return client.CoreV1Api(), client.AdmissionregistrationV1Api()


def _round(
    core: Any, admission: Any, target: Target, directory: Path, retire_after: datetime.timedelta
) -> None:
    contents = reconcile(core, admission, target, datetime.datetime.now(datetime.UTC), retire_after)
    if write_files(contents, directory):
        log.info("serving certificate files updated", extra={"directory": str(directory)})


def keep_current(
    target: Target, directory: Path, interval: float, first_round_timeout: float = 300.0
) -> threading.Event:
    """Bring the certificate up to date and write its files before returning (the server needs them to
    start), then keep it current in a daemon thread every `interval` seconds until the event is set.

    Every replica runs this on its own clock, so a CA is retired only after RETIRE_AFTER_ROUNDS of
    them: by then each replica has read, written and serves its successor's pair.
    """
    retire_after = datetime.timedelta(seconds=RETIRE_AFTER_ROUNDS * interval)
    core, admission = api_clients()
    deadline = time.monotonic() + first_round_timeout
    while True:
        try:
            _round(core, admission, target, directory, retire_after)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            log.exception("certificate set-up failed; retrying")
            time.sleep(5)
    stop = threading.Event()

    def loop() -> None:
        delay = interval
        while not stop.wait(delay):
            try:
                _round(core, admission, target, directory, retire_after)
                delay = interval
            except Exception:
                log.exception("certificate renewal round failed; retrying within a minute")
                delay = min(interval, 60.0)

    threading.Thread(target=loop, name="certificate-renewal", daemon=True).start()
    return stop


def dns_names(service: str, namespace: str) -> Sequence[str]:
    """The names kube-apiserver uses to reach a webhook Service."""
    return (
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc.cluster.local",
    )
