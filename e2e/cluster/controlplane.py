"""A real Kubernetes control plane as local processes: etcd, kube-apiserver, kube-controller-manager and
Metacontroller, plus the project's services as uvicorn processes.

Everything listens on 127.0.0.1 on ports the OS reports free; every process has its own log file in a
per-run directory and is stopped by its PID (SIGTERM, up to 10 s, then SIGKILL), also when start-up fails,
on KeyboardInterrupt and at interpreter exit. Binaries come from ``e2e/build-control-plane.sh``.

Library use::

    with ControlPlane() as cp:
        hooks = cp.start_hooks()
        cp.apply_project_manifests(REPO_ROOT / "metacontroller", hooks=hooks)
        cp.kubectl("get", "namespaces")          # parsed JSON

Command line (``up`` returns once everything is ready and leaves it running)::

    python -m e2e.cluster.controlplane up [--hooks] [--webhook] [--apply DIR]... [--foreground]
    python -m e2e.cluster.controlplane down
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import podman
from e2e.cluster import metacontroller as metacontroller_flags
from e2e.framework import upstream
from e2e.framework import versions as versions_module
from e2e.framework.manifests import Document, dump_documents, load_documents, localize_manifests
from e2e.framework.pki import (
    FRONT_PROXY_CLIENT,
    CertFiles,
    CertificateAuthority,
    ControlPlanePki,
    create_control_plane_pki,
)
from e2e.framework.processes import (
    ManagedProcess,
    ProcessGroup,
    client_environment,
    free_port,
    stop_pid,
    wait_until,
)
from kubeflow_extension.cli import APPS

REPO_ROOT = versions_module.E2E_DIR.parent
LOOPBACK = "127.0.0.1"
DEFAULT_STATE_FILE = Path(tempfile.gettempdir()) / "kubeflow-extension-controlplane.json"

KCM_CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "resourcequota-controller",
    "ttl-after-finished-controller",
    # Lifts the `not-ready` taint of a node once its kubelet reports Ready (e2e/cluster/node.py).
    "node-lifecycle-controller",
)
CLUSTER_CONTROLLERS = (
    # What Deployments behind Services need (e2e/cluster): kube-proxy programs nothing without EndpointSlices.
    "endpointslice-controller",
    "deployment-controller",
    "replicaset-controller",
    "disruption-controller",
    "horizontal-pod-autoscaler-controller",
    "statefulset-controller",
    "pod-garbage-collector-controller",
)

NAMES_BEFORE_1_28 = {
    "job-controller": "job",
    "garbage-collector-controller": "garbagecollector",
    "namespace-controller": "namespace",
    "serviceaccount-controller": "serviceaccount",
    "serviceaccount-token-controller": "serviceaccount-token",
    "root-ca-certificate-publisher-controller": "root-ca-cert-publisher",
    "clusterrole-aggregation-controller": "clusterrole-aggregation",
    "resourcequota-controller": "resourcequota",
    "ttl-after-finished-controller": "ttl-after-finished",
    "node-lifecycle-controller": "nodelifecycle",
    "endpointslice-controller": "endpointslice",
    "deployment-controller": "deployment",
    "replicaset-controller": "replicaset",
    "disruption-controller": "disruption",
    "horizontal-pod-autoscaler-controller": "horizontalpodautoscaling",
    "statefulset-controller": "statefulset",
    "pod-garbage-collector-controller": "podgc",
}
"""The same controllers as kube-controller-manager named them before 1.28 (its ``--help`` at v1.27.16
lists "All controllers: ... garbagecollector, ... job, namespace, ..."), for the oldest Kubernetes."""

# Generous: two cores, and kube-apiserver installs all its bootstrap objects on first start.
APISERVER_READY_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
# A container's start adds podman's own work to the service's imports.
CONTAINER_READY_TIMEOUT = 120.0


class MissingBinariesError(RuntimeError):
    """The control plane's programs have not been built into the cache."""


def require_binaries(versions: versions_module.Versions) -> None:
    missing = versions.missing()
    if missing:
        lines = "\n  ".join(missing)
        raise MissingBinariesError(
            f"the local control plane is not built; missing:\n  {lines}\n"
            f"Build it with: {versions_module.BUILD_SCRIPT} all   (cache: {versions.cache_dir}, "
            f"set {versions_module.CACHE_ENV} to move it)"
        )


def service_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a project service: ours without any ``KFEXT_*`` setting (a developer's own must not
    change what the tests see; the services also reject names they do not know), plus ``extra``."""
    env = {k: v for k, v in client_environment().items() if not k.startswith("KFEXT_")}
    env.update(extra or {})
    return env


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET ``url``, or None if nothing answered. Never goes through a proxy."""
    opener = _NO_PROXY_OPENER
    if context is not None:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    try:
        with opener.open(url, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ssl.SSLError):
        return None


class KubectlError(RuntimeError):
    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({returncode}): {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr

    @property
    def not_found(self) -> bool:
        return "NotFound" in self.stderr or "not found" in self.stderr


class Kubectl:
    """``kubectl`` against one kubeconfig. Calling it returns parsed JSON (``-o json`` is added)."""

    def __init__(self, kubeconfig: Path, binary: str = "kubectl", timeout: float = 60.0) -> None:
        self.kubeconfig = kubeconfig
        self.binary = shutil.which(binary) or binary
        self.timeout = timeout

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig=... <args>``; raise ``KubectlError`` on failure when ``check``."""
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env=client_environment(),
            timeout=timeout or self.timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result.returncode, result.stderr)
        return result

    def __call__(self, *args: str, stdin: str | None = None) -> Any:
        return self.json(*args, stdin=stdin)

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self.run(*args, "-o", "json", stdin=stdin).stdout)

    def get(self, resource: str, name: str, namespace: str | None = None) -> Any | None:
        """The object as JSON, or None if it does not exist."""
        scope = ["-n", namespace] if namespace else []
        try:
            return self.json("get", resource, name, *scope)
        except KubectlError as error:
            if error.not_found:
                return None
            raise

    def apply(
        self, manifests: str | Iterable[Mapping[str, Any]], *, server_side: bool = True, dry_run: bool = False
    ) -> str:
        """Apply YAML text or documents (``dry_run``: server-side dry run); returns kubectl's output."""
        text = manifests if isinstance(manifests, str) else dump_documents(manifests)
        flags = ["--server-side", "--force-conflicts", "--field-manager=e2e"] if server_side else []
        flags += ["--dry-run=server"] if dry_run else []
        return self.run("apply", *flags, "-f", "-", stdin=text).stdout

    def kustomize(self, directory: Path) -> list[Document]:
        return load_documents(self.run("kustomize", str(directory)).stdout)


@dataclass
class LocalService:
    """One of the project's ASGI apps served by ``kubeflow-extension serve`` on 127.0.0.1 (HTTPS when
    ``tls`` is given), as its Deployment runs it: here, or with ``image`` in that image under podman."""

    name: str
    app: str
    port: int
    log_path: Path
    tls: CertFiles | None = None
    ca_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    die_with_parent: bool = True
    image: str | None = None
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def _context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def healthy(self) -> bool:
        return http_get(f"{self.url}/healthz", context=self._context()) == 200

    def start(self, timeout: float = 30.0) -> LocalService:
        """Start the service (again, on the same port) and wait until ``/healthz`` answers 200."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running on {self.url}")
        if self.image is not None:
            podman.remove(self.container.name)
            mounted = CertFiles(Path(podman.TLS_DIR, "tls.crt"), Path(podman.TLS_DIR, "tls.key"))
            in_container = None if self.tls is None else mounted
            argv = podman.run_argv(self.image, self.container, self.serve_args(in_container))
            timeout = max(timeout, CONTAINER_READY_TIMEOUT)
        elif self.app in APPS.values():
            argv = [sys.executable, "-m", "kubeflow_extension", *self.serve_args(self.tls)]
        else:  # a benchmark's app, served through the same service.serve
            files = [] if self.tls is None else [str(self.tls.cert), str(self.tls.key)]
            argv = [sys.executable, "-m", "bench.server", self.app, str(self.port), *files]
        self.process = ManagedProcess(
            self.name,
            argv,
            self.log_path,
            env=service_environment(self.env),
            cwd=REPO_ROOT,
            die_with_parent=self.die_with_parent,
        )
        self.process.start()
        wait_until(self.healthy, timeout=timeout, what=f"{self.name} /healthz", watch=[self.process])
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self.image is not None:
            podman.remove(self.container.name)

    @property
    def service(self) -> str:
        """The ``kubeflow-extension serve`` name of the app (``hooks.app:app`` → ``hooks``)."""
        return self.app.split(".", 1)[0]

    @property
    def container(self) -> podman.Container:
        """The webhook gets its certificate where its Deployment mounts it, and a ``/tmp`` like it."""
        mounts: dict[Path, str] = {}
        if self.tls is not None:
            tls_dir = self.log_path.parent.parent / f"{self.name}-tls"
            if not tls_dir.exists():
                podman.readable_copy({"tls.crt": self.tls.cert, "tls.key": self.tls.key}, tls_dir)
            mounts[tls_dir] = podman.TLS_DIR
        return podman.Container(
            name=f"kubeflow-extension-{self.name}-{self.port}",
            env=self.env,
            mounts=mounts,
            tmpfs=["/tmp"] if self.tls is not None else [],
        )

    def serve_args(self, tls: CertFiles | None) -> list[str]:
        """``kubeflow-extension serve`` as the Deployment runs it, with the certificate at ``tls``."""
        args = ["serve", self.service, "--host", LOOPBACK, "--port", str(self.port)]  # JSON lines by default
        # One process and no Service routing to it: no route to wait out before stopping.
        args += ["--shutdown-delay", "0"]
        if tls is not None:
            args += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
        return args


def _tls_context(ca_file: Path, client: CertFiles | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _kubeconfig(server: str, ca: CertificateAuthority, client: CertFiles) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": b64(ca.cert_pem)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(client.cert_pem),
                    "client-key-data": b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    return json.dumps(config, indent=2)


class ControlPlane(ProcessGroup):
    """etcd + kube-apiserver + kube-controller-manager + Metacontroller on loopback, in ``run_dir``.

    ``start()`` (or ``with``) brings everything up and waits until it is ready; ``stop()`` tears it down.
    The run directory (PKI, kubeconfig, etcd data, logs) is removed on a clean stop unless ``keep_run_dir``;
    after a failure it is kept and its path printed.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        versions: versions_module.Versions | None = None,
        keep_run_dir: bool = False,
        die_with_parent: bool = True,
        extra_crds: Sequence[Path] = (),
        image: str | None = None,
        profiling: bool = False,
        node_address: str | None = None,
        aggregator_routing: bool = False,
        run_metacontroller: bool = True,
    ) -> None:
        super().__init__()
        self.versions = versions or versions_module.load()
        require_binaries(self.versions)
        # Read before anything starts, so that a module missing from the Go module cache fails first.
        crds_override = self.versions.metacontroller_crds_override
        self.crds = (
            upstream.control_plane_crds()
            if crds_override is None
            else [*load_documents(crds_override.read_text()), *upstream.api_crds()]
        )
        shm = Path("/dev/shm")
        parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="kfext-cp-", dir=parent))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.keep_run_dir = keep_run_dir
        self.die_with_parent = die_with_parent
        self.extra_crds = list(extra_crds)
        self.image = image
        self.profiling = profiling  # kube-apiserver's /debug/pprof, for benchmarks
        # For a cluster whose Pods reach kube-apiserver (e2e/cluster): it listens on the node's address,
        # which must be on the host already, and is the `kubernetes` Service's endpoint there.
        self.node_address = node_address
        # Webhook calls go to a random ready endpoint of the Service rather than to its ClusterIP.
        self.aggregator_routing = aggregator_routing
        # False where Metacontroller runs in a Pod, from its own manifests.
        self.run_metacontroller = run_metacontroller
        self.logs_dir = self.run_dir / "logs"
        self.kubeconfig = self.run_dir / "admin.kubeconfig"
        self.kubectl = Kubectl(self.kubeconfig)
        self.ports = {
            name: free_port()
            for name in (
                "etcd",
                "etcd-peer",
                "apiserver",
                "controller-manager",
                "metacontroller",
                "metacontroller-health",
            )
        }
        self.server = f"https://{node_address or LOOPBACK}:{self.ports['apiserver']}"
        self.services: list[LocalService] = []
        self._pki: ControlPlanePki | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def _mark(self, name: str, since: float) -> None:
        self.timings[name] = time.monotonic() - since

    def _start(self) -> None:
        v, ports, t0 = self.versions, self.ports, time.monotonic()
        pki = self._pki = create_control_plane_pki(self.run_dir / "pki", self.node_address)
        self.kubeconfig.write_text(_kubeconfig(self.server, pki.ca, pki.admin))
        self.kubeconfig.chmod(0o600)

        etcd_url, peer_url = f"http://{LOOPBACK}:{ports['etcd']}", f"http://{LOOPBACK}:{ports['etcd-peer']}"
        etcd = self._spawn(
            "etcd",
            [
                v.etcd_binary,
                "--name=e2e",
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        wait_until(
            lambda: http_get(f"{etcd_url}/health") == 200, timeout=READY_TIMEOUT, what="etcd", watch=[etcd]
        )
        self._mark("etcd", t0)

        apiserver = self._spawn(
            "kube-apiserver",
            [
                v.kube_apiserver,
                f"--etcd-servers={etcd_url}",
                f"--secure-port={ports['apiserver']}",
                *self._address_flags(),
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.files.cert}",
                # A kubelet (e2e/cluster/node.py) is authorized as its node; it serves to this client
                # only, and is reached by its `Hostname` address, 127.0.0.1.
                f"--kubelet-client-certificate={pki.kubelet_client.cert}",
                f"--kubelet-client-key={pki.kubelet_client.key}",
                f"--kubelet-certificate-authority={pki.ca.files.cert}",
                "--kubelet-preferred-address-types=Hostname",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--profiling={str(self.profiling).lower()}",
                f"--enable-aggregator-routing={str(self.aggregator_routing).lower()}",
                # The aggregation layer (metrics-server's metrics.k8s.io), with kubeadm's header names.
                f"--requestheader-client-ca-file={pki.front_proxy_ca.files.cert}",
                f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
                f"--proxy-client-key-file={pki.front_proxy_client.key}",
                "--v=1",
            ],
        )
        anonymous = _tls_context(pki.ca.files.cert)
        wait_until(
            lambda: http_get(f"{self.server}/readyz", context=anonymous) == 200,
            timeout=APISERVER_READY_TIMEOUT,
            what="kube-apiserver /readyz",
            watch=[etcd, apiserver],
        )
        self._mark("kube-apiserver", t0)

        controller_manager = self._spawn(
            "kube-controller-manager",
            [
                v.kube_controller_manager,
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={ports['controller-manager']}",
                f"--cert-dir={self.run_dir / 'controller-manager'}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca.files.cert}",
                f"--controllers={','.join(self._controllers())}",
                # Above the defaults (20 QPS, burst 30): the namespace controller and the garbage collector
                # send requests per resource type, and there are ~80 here with the CRDs.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
            ],
        )

        self.install_crds()
        self._mark("crds", t0)

        everything = [etcd, apiserver, controller_manager]
        if self.run_metacontroller:
            everything.append(self._start_metacontroller(everything))
            self._mark("metacontroller", t0)

        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE  # its self-signed serving cert, on loopback
        wait_until(
            lambda: (
                http_get(f"https://{LOOPBACK}:{ports['controller-manager']}/healthz", context=unverified)
                == 200
            ),
            timeout=READY_TIMEOUT,
            what="kube-controller-manager /healthz",
            watch=everything,
        )
        admin = _tls_context(pki.ca.files.cert, pki.admin)
        wait_until(
            lambda: (
                http_get(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", context=admin)
                == 200
            ),
            timeout=READY_TIMEOUT,
            what="the `default` ServiceAccount (serviceaccount controller)",
            watch=everything,
        )
        self._mark("kube-controller-manager", t0)

    def _address_flags(self) -> list[str]:
        if self.node_address is None:
            # A loopback advertise address is invalid for the `kubernetes` Service's endpoints, and
            # nothing without a Pod network needs them.
            return [
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                "--endpoint-reconciler-type=none",
            ]
        return [f"--bind-address={self.node_address}", f"--advertise-address={self.node_address}"]

    def _controllers(self) -> tuple[str, ...]:
        names = KCM_CONTROLLERS + (CLUSTER_CONTROLLERS if self.node_address else ())
        if self.versions.kubernetes_minor < (1, 28):
            return tuple(NAMES_BEFORE_1_28[name] for name in names)
        return names

    def _start_metacontroller(self, watch: list[ManagedProcess]) -> ManagedProcess:
        """Metacontroller as a local process; whichever it is (1.5 or v4), its flags come from its --help."""
        v, ports = self.versions, self.ports
        endpoints = metacontroller_flags.Endpoints(ports["metacontroller"], ports["metacontroller-health"])
        flags = metacontroller_flags.advertised_flags(metacontroller_flags.read_help(v.metacontroller_binary))
        metacontroller = self._spawn(
            "metacontroller",
            [v.metacontroller_binary, *metacontroller_flags.arguments(flags, self.kubeconfig, endpoints)],
        )
        wait_until(
            lambda: http_get(endpoints.metrics_url) == 200,
            timeout=READY_TIMEOUT,
            what="metacontroller /metrics",
            watch=[*watch, metacontroller],
        )
        return metacontroller

    def stop(self) -> None:
        """Stop services and control plane in reverse start order. Idempotent."""
        for service in reversed(self.services):
            service.stop()
        for process in reversed(self.processes):
            process.stop()
        if self._started and not self.keep_run_dir and not self._failed:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        elif self._started:
            print(f"control plane files kept in {self.run_dir}", file=sys.stderr)
        self._stopped()

    def detach(self) -> None:
        """Forget every process without stopping it (they keep running for ``down``); keep the files."""
        self.processes, self.services = [], []
        self._stopped()

    # -- diagnostics -------------------------------------------------------------------------------

    def all_processes(self) -> list[ManagedProcess]:
        return [*self.processes, *(s.process for s in self.services if s.process is not None)]

    # -- cluster content ---------------------------------------------------------------------------

    @property
    def ca(self) -> CertificateAuthority:
        if self._pki is None:
            raise RuntimeError("the control plane has not been started")
        return self._pki.ca

    @property
    def admin_client(self) -> CertFiles:
        """The ``system:masters`` client certificate of the admin kubeconfig."""
        if self._pki is None:
            raise RuntimeError("the control plane has not been started")
        return self._pki.admin

    def ca_context(self) -> ssl.SSLContext:
        """A TLS context that trusts this control plane's CA (and presents no client certificate)."""
        return _tls_context(self.ca.files.cert)

    def client_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> str:
        """A kubeconfig for this API server with a new client certificate for ``user`` in ``groups``."""
        name = user.replace(":", "-")
        client = self.ca.issue(name, user, organizations=groups, client=True)
        return _kubeconfig(self.server, self.ca, client)

    def install_crds(self) -> None:
        """Apply every CRD (``upstream.control_plane_crds()`` and ``extra_crds``) and wait until they are
        established."""
        documents = list(self.crds)
        for path in self.extra_crds:
            documents += load_documents(path.read_text())
        crd_list = json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        self.kubectl.run("apply", "--server-side", "--field-manager=e2e", "-f", "-", stdin=crd_list)
        names = [f"crd/{d['metadata']['name']}" for d in documents]
        self.kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *names)

    def start_service(
        self,
        name: str,
        app: str,
        *,
        tls: bool = False,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> LocalService:
        """Serve ``app`` (``module:attribute``) on a free port as its Deployment does, or from the control
        plane's ``image``; HTTPS with a cert from the run's CA when ``tls``. Returns once ``/healthz``
        answers.

        ``name`` names its log and certificate files; a name this control plane has served before (test
        modules share one) gets a numbered suffix, so no earlier file is overwritten or reused."""
        taken = {service.name for service in self.services}
        name = next(n for n in (name, *(f"{name}-{i}" for i in range(2, len(taken) + 3))) if n not in taken)
        module = app.split(":", 1)[0]
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"{app}: module {module} is not importable from {REPO_ROOT}")
        ca = self.ca
        service = LocalService(
            name=name,
            app=app,
            port=free_port(),
            log_path=self.logs_dir / f"{name}.log",
            tls=ca.issue_loopback_serving(name) if tls else None,
            ca_file=ca.files.cert,
            env=dict(env or {}),
            die_with_parent=self.die_with_parent,
            image=self.image,
        )
        self.services.append(service)
        return service.start(timeout)

    def start_hooks(self, env: Mapping[str, str] | None = None) -> LocalService:
        """``hooks.app:app`` over plain HTTP (Metacontroller calls it with ``http://`` URLs)."""
        return self.start_service("hooks", "hooks.app:app", env=env)

    def start_webhook(self, env: Mapping[str, str] | None = None) -> LocalService:
        """``webhook.app:app`` over HTTPS with a serving certificate for 127.0.0.1 from the run's CA."""
        return self.start_service("webhook", "webhook.app:app", tls=True, env=env)

    def localized_manifests(
        self,
        directory: Path,
        *,
        hooks: LocalService | None = None,
        webhook: LocalService | None = None,
    ) -> list[Document]:
        """``kubectl kustomize directory`` with the service references pointed at the local services."""
        return localize_manifests(
            self.kubectl.kustomize(directory),
            hooks_url=hooks.url if hooks else None,
            webhook_url=webhook.url if webhook else None,
            ca_bundle_pem=self.ca.cert_pem if webhook else None,
        )

    def apply_project_manifests(
        self,
        directory: Path,
        *,
        hooks: LocalService | None = None,
        webhook: LocalService | None = None,
    ) -> list[Document]:
        """Apply one of the project's kustomize directories, localized; returns what was applied."""
        documents = self.localized_manifests(directory, hooks=hooks, webhook=webhook)
        self.kubectl.apply(documents)
        return documents

    # -- state for the command line ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "ports": self.ports,
            "services": {s.name: s.url for s in self.services},
            "processes": [
                {"name": p.name, "pid": p.pid, "exe": p.argv[0], "log": str(p.log_path)}
                for p in self.all_processes()
            ],
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


# -- command line ----------------------------------------------------------------------------------


def _down(state_file: Path) -> int:
    if not state_file.exists():
        print(f"nothing to stop: {state_file} does not exist", file=sys.stderr)
        return 0
    state = json.loads(state_file.read_text())
    for process in reversed(state["processes"]):
        stop_pid(int(process["pid"]), expected_exe=process["exe"])
    shutil.rmtree(state["run_dir"], ignore_errors=True)
    state_file.unlink()
    print(f"stopped; removed {state['run_dir']}")
    return 0


def state_is_live(state_file: Path) -> bool:
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    return any(Path(f"/proc/{p['pid']}").exists() for p in state["processes"])


def _up(arguments: argparse.Namespace) -> int:
    state_file: Path = arguments.state
    if state_is_live(state_file):
        print(f"a control plane is already up ({state_file}); run `down` first", file=sys.stderr)
        return 1
    plane = ControlPlane(keep_run_dir=not arguments.foreground, die_with_parent=arguments.foreground)
    if arguments.foreground:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with plane:
        hooks = plane.start_hooks() if arguments.hooks else None
        webhook = plane.start_webhook() if arguments.webhook else None
        for directory in arguments.apply:
            plane.apply_project_manifests(directory, hooks=hooks, webhook=webhook)
        state = plane.state()
        state_file.write_text(json.dumps(state, indent=2))
        print(f"control plane up in {plane.timings['start']:.1f} s: {plane.server}")
        for name, url in state["services"].items():
            print(f"  {name}: {url}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        if not arguments.foreground:
            plane.detach()
            return 0
        print("running; Ctrl-C to stop", file=sys.stderr)
        try:
            while all(p.alive for p in plane.all_processes()):
                time.sleep(1)
            raise RuntimeError("a control plane process exited")
        except KeyboardInterrupt:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                state_file.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.cluster.controlplane", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE_FILE, help="state file (PIDs, paths)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the control plane (and services), print KUBECONFIG")
    up.add_argument("--hooks", action="store_true", help="also serve hooks.app:app")
    up.add_argument("--webhook", action="store_true", help="also serve webhook.app:app over HTTPS")
    up.add_argument(
        "--apply", type=Path, action="append", default=[], help="kustomize dir to apply, localized"
    )
    up.add_argument("--foreground", action="store_true", help="stay in the foreground until Ctrl-C")
    commands.add_parser("down", help="stop what `up` started, by PID, and remove its files")
    commands.add_parser("status", help="print the state file")
    arguments = parser.parse_args(argv)
    if arguments.command == "down":
        return _down(arguments.state)
    if arguments.command == "status":
        if not state_is_live(arguments.state):
            print("down")
            return 1
        print(arguments.state.read_text())
        return 0
    try:
        return _up(arguments)
    except MissingBinariesError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
