"""A one-node cluster users would recognise, grown from the local control plane and node: a Pod network
(every Pod its own address on a bridge), kube-proxy in iptables mode, kube-apiserver reachable from Pods
through the ``kubernetes`` Service, and the product deployed from its image and its shipped manifests.

``Cluster`` holds the machine's node lock for its whole life and records the host before it changes
anything (sysctls, links, netfilter tables and nfacct counters, the node address on ``lo``); ``stop()``
puts all of it back, also after a failure, and fails if it could not.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e2e.cluster import dns, host, metrics_server
from e2e.cluster import network as host_network
from e2e.cluster.api import Api
from e2e.cluster.controlplane import LOOPBACK, ControlPlane, Kubectl, http_get
from e2e.cluster.node import IMAGE_REGISTRY, NODE_IP, NODE_NAME, Node, PodNetwork
from e2e.framework import oci, upstream
from e2e.framework.processes import ManagedProcess, ProcessGroup, free_port, wait_until

READY_TIMEOUT = 120.0
PRODUCT_IMAGE = "ghcr.io/kubeflow-extension/kubeflow-extension"
"""The image name both kustomizations use; a deployment retargets it with kustomize's ``images:``."""
METACONTROLLER_IMAGE = "metacontrollerio/metacontroller"
METACONTROLLER_PATH = "/usr/bin/metacontroller"
"""Where its release image has the binary (its manifests' ``command``)."""
METACONTROLLER_OWN_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["metacontroller.k8s.io"],
        "resources": ["compositecontrollers", "controllerrevisions", "decoratorcontrollers"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
"""What Metacontroller needs for its own objects (as Kubeflow's ``kubeflow-metacontroller`` role grants
them, kubeflow/pipelines ``manifests/kustomize/third-party/metacontroller/base/cluster-role.yaml``), in
place of the ``*`` its release manifests grant: everything a controller of ours needs beyond that must
come from the role ``metacontroller/`` ships."""
Patch = tuple[dict[str, str], list[dict[str, Any]]]
"""A kustomize patch: its target (kind, name, ...) and a JSON Patch."""


def kube_proxy_args(
    binary: Path, kubeconfig: Path, network: PodNetwork, healthz_port: int, metrics_port: int
) -> list[str]:
    """kube-proxy in iptables mode, changing no host setting of its own: conntrack limits and timeouts left
    as they are, node ports only on the node's address, its ports on loopback. The iptables sync period
    stays at its default (1 s), as in a real cluster: that lag is what a draining webhook must outlast."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--proxy-mode=iptables",
        f"--hostname-override={NODE_NAME}",
        f"--cluster-cidr={network.pod_cidr}",
        "--nodeport-addresses=primary",
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        "--iptables-localhost-nodeports=false",
        "--oom-score-adj=0",
        f"--healthz-bind-address={LOOPBACK}:{healthz_port}",
        f"--metrics-bind-address={LOOPBACK}:{metrics_port}",
        "--v=1",
    ]


class Cluster(ProcessGroup):
    """Control plane (kube-apiserver on the node's address), node with a Pod network, kube-proxy."""

    def __init__(
        self,
        *,
        aggregator_routing: bool = False,
        keep_run_dir: bool = False,
        network: PodNetwork | None = None,
        dns: bool = True,
    ) -> None:
        """``dns``: CoreDNS for the Pods (what Metacontroller needs to find the hooks)."""
        super().__init__()
        self.network = network or PodNetwork()
        self.dns = dns
        self.keep_run_dir = keep_run_dir
        self.plane = ControlPlane(
            node_address=NODE_IP,
            aggregator_routing=aggregator_routing,
            run_metacontroller=False,
            keep_run_dir=keep_run_dir,
        )
        self.run_dir = self.plane.run_dir
        self.logs_dir = self.plane.logs_dir
        self.kubectl: Kubectl = self.plane.kubectl
        self.node: Node | None = None
        self._claim: host.HostClaim | None = None
        self._proxy: ManagedProcess | None = None

    @property
    def routing(self) -> str:
        return "endpoint" if self.plane.aggregator_routing else "clusterip"

    def _start(self) -> None:
        t0 = time.monotonic()
        self._claim = host.HostClaim(NODE_IP)
        self._claim.changes.add_node_address()
        host_network.set_up(self.network)
        self.plane.start()
        self.timings["control plane"] = time.monotonic() - t0
        self.node = Node(self.plane, network=self.network, claim=self._claim, keep_run_dir=self.keep_run_dir)
        self.node.start()
        self.timings["node"] = time.monotonic() - t0
        self._start_kube_proxy()
        self.timings["kube-proxy"] = time.monotonic() - t0
        if self.dns:
            self._start_dns()
            self.timings["dns"] = time.monotonic() - t0

    def _start_dns(self) -> None:
        assert self.node is not None
        self.node.import_image(
            dns.IMAGE, dns.image_layer(self.plane.versions.coredns_binary), dns.image_config()
        )
        documents = dns.manifests(self.network, free_port(), free_port())
        self.kubectl.run(
            "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        )
        self.kubectl.run(
            "rollout", "status", "deployment/coredns", "-n", dns.NAMESPACE, "--timeout=120s", timeout=150
        )

    def _start_kube_proxy(self) -> None:
        kubeconfig = self.run_dir / "kube-proxy.kubeconfig"
        kubeconfig.write_text(self.plane.client_kubeconfig("system:kube-proxy"))
        kubeconfig.chmod(0o600)
        healthz = free_port()
        argv = kube_proxy_args(self.plane.versions.kube_proxy, kubeconfig, self.network, healthz, free_port())
        self._proxy = self._spawn("kube-proxy", argv)
        wait_until(
            lambda: http_get(f"http://{LOOPBACK}:{healthz}/healthz") == 200,
            timeout=READY_TIMEOUT,
            what="kube-proxy /healthz",
            watch=[self._proxy],
        )
        # Pods reach kube-apiserver at the `kubernetes` Service's ClusterIP: wait until that is routed.
        context = self.plane.ca_context()
        wait_until(
            lambda: http_get("https://10.0.0.1:443/readyz", context=context) == 200,
            timeout=READY_TIMEOUT,
            what="kube-apiserver through the `kubernetes` Service",
            watch=[self._proxy],
        )

    def stop(self) -> None:
        """Stop kube-proxy (and remove its rules), the node, the control plane; put the host back. Raises if
        the host could not be put back. Idempotent."""
        if not self._started:
            return
        problems: list[str] = []
        try:
            for process in self.processes:
                process.stop()
            if self._proxy is not None:
                cleanup = subprocess.run(
                    [str(self.plane.versions.kube_proxy), "--cleanup"],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=60,
                )
                if cleanup.returncode != 0:
                    problems.append(f"kube-proxy --cleanup: {cleanup.stderr.strip()[-500:]}")
            if self.node is not None:
                try:
                    self.node.stop()
                except RuntimeError as error:
                    problems.append(str(error))
            self.plane.stop()
        finally:
            if self._claim is not None:
                problems += self._claim.release()
            self._stopped()
        if problems:
            raise RuntimeError("the local cluster left the host changed:\n  " + "\n  ".join(problems))

    def all_processes(self) -> list[ManagedProcess]:
        node = self.node.all_processes() if self.node is not None else []
        return [*self.plane.all_processes(), *node, *self.processes]

    # -- the product -------------------------------------------------------------------------------

    @property
    def api(self) -> Api:
        """kube-apiserver's REST API as the cluster's admin."""
        return Api(self.plane.server, str(self.plane.ca.files.cert), self.plane.admin_client)

    def import_image(self, image: str) -> None:
        """The image from podman's store (``just image`` builds it there) into the kubelet's containerd."""
        assert self.node is not None
        archive = self.run_dir / "product-image.tar"
        # A docker-archive names the image in its manifest (RepoTags), which `ctr images import` keeps.
        saved = subprocess.run(
            ["podman", "save", "--format", "docker-archive", "-o", str(archive), image],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if saved.returncode != 0:
            raise RuntimeError(f"podman save {image}: {saved.stderr.strip()} (build it first: just image)")
        self.node.ctr("images", "import", str(archive), timeout=300)
        archive.unlink()

    def deploy_metacontroller(self) -> None:
        """Metacontroller from its own release manifests (read from its Go module), the image retargeted to
        one holding the binary the harness built, running as its own ServiceAccount in a Pod with only
        ``METACONTROLLER_OWN_RULES`` of its own: the rest is what ``metacontroller/`` ships."""
        assert self.node is not None
        versions = self.plane.versions
        binary = versions.metacontroller_binary
        reference = f"{IMAGE_REGISTRY}/metacontroller:v{versions.metacontroller}"
        self.node.import_image(
            reference,
            oci.Layer(files={METACONTROLLER_PATH: binary}),
            oci.ImageConfig(entrypoint=[METACONTROLLER_PATH]),
        )
        manifests = upstream.module_dir(upstream.METACONTROLLER) / "manifests" / "production"
        only_its_own: list[dict[str, Any]] = [
            {"op": "test", "path": "/rules/0/apiGroups", "value": ["*"]},
            {"op": "replace", "path": "/rules", "value": METACONTROLLER_OWN_RULES},
        ]
        self.apply_kustomization(
            "metacontroller",
            [manifests],
            reference,
            image_name=METACONTROLLER_IMAGE,
            patches=[({"kind": "ClusterRole", "name": "metacontroller"}, only_its_own)],
        )
        self.kubectl.run(
            "rollout",
            "status",
            "statefulset/metacontroller",
            "-n",
            "metacontroller",
            "--timeout=120s",
            timeout=150,
        )

    def deploy_metrics_server(self) -> None:
        """metrics-server (e2e/cluster/metrics_server.py), then wait until it serves the node's metrics."""
        assert self.node is not None
        versions = self.plane.versions
        reference = metrics_server.image_reference(versions.metrics_server)
        self.node.import_image(
            reference,
            metrics_server.image_layer(versions.metrics_server_binary),
            metrics_server.image_config(),
        )
        module = upstream.module_dir(upstream.METRICS_SERVER)
        self.apply_kustomization(
            "metrics-server",
            [module.joinpath(*metrics_server.OVERLAY)],
            reference,
            image_name=metrics_server.UPSTREAM_IMAGE,
            patches=[
                (
                    {"kind": "Deployment", "name": "metrics-server"},
                    metrics_server.deployment_patch(free_port()),
                )
            ],
        )
        self.kubectl.run(
            "rollout", "status", "deployment/metrics-server", "-n", metrics_server.NAMESPACE,
            "--timeout=180s", timeout=200,
        )  # fmt: skip
        wait_until(
            lambda: (
                self.kubectl.run(
                    "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False
                ).stdout.count(NODE_NAME)
                > 0
            ),
            timeout=READY_TIMEOUT,
            what="the node's metrics through metrics.k8s.io",
        )

    def apply_kustomization(
        self,
        name: str,
        resources: Sequence[Path],
        image: str,
        components: Sequence[Path] = (),
        image_name: str = PRODUCT_IMAGE,
        patches: Sequence[Patch] = (),
    ) -> None:
        """Apply ``resources`` (kustomizations) as a user would, with a kustomization of their own that
        retargets ``image_name`` to ``image`` and applies ``patches`` (target, JSON Patch), if any."""
        directory = self.run_dir / "kustomizations" / name
        directory.mkdir(parents=True, exist_ok=True)
        repository, tag = image.rsplit(":", 1)
        lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:"]
        lines += [f"- {os.path.relpath(path, directory)}" for path in resources]
        if components:
            lines += ["components:", *(f"- {os.path.relpath(path, directory)}" for path in components)]
        lines += ["images:", f"- name: {image_name}", f"  newName: {repository}", f"  newTag: {tag}"]
        if patches:
            lines += ["patches:"]
            lines += [f"- target: {json.dumps(t)}\n  patch: {json.dumps(json.dumps(p))}" for t, p in patches]
        (directory / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        self.kubectl.run("apply", "--server-side", "--field-manager=e2e-user", "-k", str(directory))
