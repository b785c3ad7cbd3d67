"""The built image, run the way its Deployments run it (``just image-test`` builds it and names it in
``KUBEFLOW_EXTENSION_IMAGE``): user 65532:65532, read-only root filesystem, no capabilities; both services
answer their probes, the webhook serves TLS from a mounted certificate; and nothing of the build is left
in it: no pip, setuptools or ``_distutils_hack``, no pip configuration, none of the build host's CAs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import ssl
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import podman
from e2e.cluster.controlplane import REPO_ROOT, ControlPlane, Kubectl, http_get
from e2e.framework.manifests import localize_manifests
from e2e.framework.pki import CertificateAuthority
from e2e.framework.processes import ManagedProcess, free_port, wait_until
from tests.webhook import katib_objects

IMAGE_ENV = "KUBEFLOW_EXTENSION_IMAGE"
START_TIMEOUT = 120.0
BUILD_TOOLS = ("pip", "setuptools", "_distutils_hack", "wheel", "pkg_resources")
PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.S)


@pytest.fixture(scope="module")
def image() -> str:
    name = os.environ.get(IMAGE_ENV, "")
    if not name:
        pytest.fail(f"set {IMAGE_ENV} to the image to test (`just image-test` does)", pytrace=False)
    return name


def podman_json(*args: str) -> Any:
    result = subprocess.run([*podman.PODMAN, *args], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout)


@contextlib.contextmanager
def running(
    image: str, container: podman.Container, args: list[str], health_url: str, tmp_path: Path, **tls: Any
) -> Iterator[ManagedProcess]:
    """The image serving in the foreground under podman until ``health_url`` answers 200."""
    process = ManagedProcess(container.name, podman.run_argv(image, container, args), tmp_path / "log")
    podman.remove(container.name)
    process.start()
    try:
        wait_until(
            lambda: http_get(health_url, **tls) == 200,
            timeout=START_TIMEOUT,
            what=f"{container.name} {health_url}",
            watch=[process],
        )
        yield process
    finally:
        process.stop()
        podman.remove(container.name)


def container_ids(name: str) -> tuple[list[str], list[str]]:
    """The real and effective (uid, gid) lists of the container's main process, from the host's /proc."""
    pid = podman_json("inspect", name)[0]["State"]["Pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return fields["Uid"].split(), fields["Gid"].split()


def write_attempt(name: str, path: str) -> subprocess.CompletedProcess[str]:
    script = f"import pathlib; pathlib.Path({path!r}).write_text('x')"
    return subprocess.run(
        [*podman.PODMAN, "exec", name, "python", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_configured_user_is_numeric_and_not_root(image: str) -> None:
    config = podman_json("image", "inspect", image)[0]["Config"]
    assert config["User"] == podman.USER


def test_hooks_run_as_their_deployment_runs_them(image: str, tmp_path: Path) -> None:
    """The Deployment's user, read-only root and config file mount; the probes answer, writes fail."""
    port = free_port()
    config_dir = REPO_ROOT / "metacontroller" / "base"
    container = podman.Container(
        name=f"kubeflow-extension-test-hooks-{port}",
        env={"KFEXT_CONFIG_FILE": "/etc/kubeflow-extension/config.yaml"},
        mounts={config_dir / "config.yaml": "/etc/kubeflow-extension/config.yaml"},
    )
    args = ["serve", "hooks", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running(image, container, args, f"{url}/healthz", tmp_path):
        assert http_get(f"{url}/readyz") == 200
        uids, gids = container_ids(container.name)
        assert set(uids) == {str(podman.UID)}
        assert set(gids) == {str(podman.GID)}
        refused = write_attempt(container.name, "/opt/kubeflow-extension/written")
        assert refused.returncode != 0
        assert "Read-only file system" in refused.stderr


def test_webhook_serves_tls_from_a_mounted_certificate(image: str, tmp_path: Path) -> None:
    """The certificate mounted where the Deployment mounts its Secret is the one served; /mutate works."""
    port = free_port()
    ca = CertificateAuthority(tmp_path / "pki")
    serving = ca.issue_loopback_serving("webhook")
    tls_dir = podman.readable_copy({"tls.crt": serving.cert, "tls.key": serving.key}, tmp_path / "tls")
    container = podman.Container(
        name=f"kubeflow-extension-test-webhook-{port}", mounts={tls_dir: podman.TLS_DIR}, tmpfs=["/tmp"]
    )
    args = ["serve", "webhook", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--certfile", f"{podman.TLS_DIR}/tls.crt", "--keyfile", f"{podman.TLS_DIR}/tls.key"]
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca.files.cert))
    with running(image, container, args, f"{url}/healthz", tmp_path, context=context):
        assert http_get(f"{url}/readyz", context=context) == 200
        served = ssl.get_server_certificate(("127.0.0.1", port))
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(serving.cert.read_text())
        uids, _ = container_ids(container.name)
        assert set(uids) == {str(podman.UID)}

        review = katib_objects.review(katib_objects.notebook_pod())
        request = urllib.request.Request(
            f"{url}/mutate", data=json.dumps(review).encode(), headers={"Content-Type": "application/json"}
        )
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        with opener.open(request, timeout=30) as answer:
            response = json.load(answer)["response"]
        patch = json.loads(base64.b64decode(response["patch"]))
        assert response["allowed"] is True
        assert any(op["path"].startswith("/metadata/labels") for op in patch)


def run_python(image: str, program: str, python: str = "python") -> subprocess.CompletedProcess[str]:
    container = podman.Container(name=f"kubeflow-extension-test-python-{free_port()}", network="none")
    return subprocess.run(
        podman.run_argv(image, container, ["-c", program], entrypoint=python),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("python", ["python", "/usr/local/bin/python3"])
def test_no_build_tools_importable(image: str, python: str) -> None:
    """Neither the service's venv nor the base's Python can import pip, setuptools or their hooks."""
    program = (
        "import importlib.util, json, sys; "
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {list(BUILD_TOOLS)!r}}}))"
    )
    result = run_python(image, program, python)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == dict.fromkeys(BUILD_TOOLS, False)


def test_what_the_services_import_survived_the_trim(image: str) -> None:
    """The trimmed kubernetes client still imports, with what the self-managed certificates use; its
    asyncio twin and the aiohttp stack are gone."""
    program = (
        "import hooks.app, webhook.app, service.certificate_sync, kubernetes.config; "
        "from kubernetes import client; client.CoreV1Api; client.AdmissionregistrationV1Api; "
        "import importlib.util as u; print([u.find_spec(m) is None for m in ('kubernetes.aio', 'aiohttp')])"
    )
    result = run_python(image, program)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True]"


@pytest.fixture(scope="module")
def filesystem(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's root filesystem as one tar (``podman export`` of a created, never started container)."""
    name = f"kubeflow-extension-test-export-{free_port()}"
    target = tmp_path_factory.mktemp("export") / "rootfs.tar"
    subprocess.run(
        [*podman.PODMAN, "create", "--name", name, image], capture_output=True, check=True, timeout=120
    )
    try:
        subprocess.run([*podman.PODMAN, "export", "--output", str(target), name], check=True, timeout=600)
    finally:
        podman.remove(name)
    return target


def pem_bodies(bundle: bytes) -> set[bytes]:
    """The base64 bodies of the certificates in a PEM bundle, whitespace removed."""
    return {re.sub(rb"\s", b"", m.group(1)) for m in PEM_BLOCK.finditer(bundle)}


def host_bundle() -> Path:
    """The CA bundle the build script lends the build (the same choice as scripts/build-image.sh)."""
    return Path(
        os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    )


def test_no_build_time_trust_left(image: str, filesystem: Path) -> None:
    """No pip configuration, and none of the certificates only the build host trusts, anywhere."""
    with tarfile.open(filesystem) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        names = {m.name.lstrip("./"): m for m in members}
        own_bundle = tar.extractfile(names["etc/ssl/certs/ca-certificates.crt"])
        assert own_bundle is not None
        host_only = pem_bodies(host_bundle().read_bytes()) - pem_bodies(own_bundle.read())
        # A 64-character line of each body: a copy of the certificate in any file would contain it.
        needles = [body[64:128] for body in host_only]
        print(f"{len(host_only)} certificates the build host trusts and the base image does not")
        found = []
        for member in members:
            handle = tar.extractfile(member)
            data = handle.read() if handle is not None else b""
            found += [member.name for needle in needles if needle in re.sub(rb"\s", b"", data)]
    pip_configs = [n for n in names if n.endswith(("pip.conf", "pip.ini"))]
    assert pip_configs == []
    assert found == []

    config = podman_json("image", "inspect", image)[0]
    env = " ".join(config["Config"].get("Env") or [])
    for variable in ("PIP_CERT", "PIP_CONFIG_FILE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        assert variable not in env
    history = " ".join(
        str(step.get("created_by", "")) for step in podman_json("image", "history", "--format", "json", image)
    )
    assert "pip.conf" not in history


def test_no_build_tools_on_disk(filesystem: Path) -> None:
    """Not just unimportable: no installed copy of a build tool or its console scripts at all."""
    with tarfile.open(filesystem) as tar:
        names = [m.name.lstrip("./") for m in tar.getmembers()]
    leftovers = [
        name
        for name in names
        if re.search(
            r"(site|dist)-packages/(pip|setuptools|_distutils_hack|wheel|pkg_resources)([-/.]|$)", name
        )
        or re.fullmatch(
            r"(usr/local/bin|usr/bin|opt/kubeflow-extension/bin)/(pip|pip3|pip3\.\d+|wheel)", name
        )
    ]
    assert leftovers == []
    assert not any(n.startswith("opt/build/") for n in names)


@pytest.mark.e2e
def test_webhook_keeps_its_own_certificate_from_the_image(
    image: str, control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The trimmed kubernetes client at work: the webhook of the self-managed overlay, from the image, as
    its own service account (a token; the overlay's RBAC), creates its Secret, publishes its CA in the
    webhook configuration and serves a certificate that chains to it."""
    namespace, port = "kubeflow-extension", free_port()
    documents = localize_manifests(
        kubectl.kustomize(REPO_ROOT / "webhook" / "self-managed-certificates"),
        webhook_url=f"https://127.0.0.1:{port}",
        ca_bundle_pem=control_plane.ca.cert_pem,
    )
    kubectl.apply([d for d in documents if d["kind"] == "Namespace"])
    kubectl.apply(documents)
    token = kubectl.run("create", "token", "kubeflow-extension-webhook", "-n", namespace).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority-data": base64.b64encode(control_plane.ca.cert_pem).decode(),
                },
            }
        ],
        "users": [{"name": "webhook", "user": {"token": token}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "local", "user": "webhook"}}],
        "current-context": "webhook",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    kube_dir = podman.readable_copy({"config": tmp_path / "kubeconfig"}, tmp_path / "kube")
    container = podman.Container(
        name=f"kubeflow-extension-test-self-managed-{port}",
        env={"KUBECONFIG": "/etc/kubeflow-extension/kube/config"},
        mounts={kube_dir: "/etc/kubeflow-extension/kube"},
        tmpfs=["/tmp", podman.TLS_DIR],
    )
    args = ["serve", "webhook", "--host", "127.0.0.1", "--port", str(port), "--namespace", namespace]
    args += ["--self-managed-certificates", "--cert-dir", podman.TLS_DIR]
    url = f"https://127.0.0.1:{port}/healthz"
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    try:
        with running(image, container, args, url, tmp_path, context=unverified):
            secret = kubectl("get", "secret", "kubeflow-extension-webhook-certificates", "-n", namespace)
            configuration = kubectl("get", "mutatingwebhookconfiguration", "kubeflow-extension")
            bundles = {base64.b64decode(w["clientConfig"]["caBundle"]) for w in configuration["webhooks"]}
            assert len(bundles) == 1
            (bundle,) = bundles
            assert bundle != control_plane.ca.cert_pem
            # The names are the Service's, not 127.0.0.1: check the chain, not the host name.
            published = ssl.create_default_context(cadata=bundle.decode())
            published.check_hostname = False
            assert http_get(url, context=published) == 200
            served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
            stored = base64.b64decode(secret["data"]["tls.crt"]).decode()
            assert served == ssl.PEM_cert_to_DER_cert(stored)
    finally:
        kubectl.run("delete", "mutatingwebhookconfiguration", "kubeflow-extension", "--ignore-not-found")
