"""A real node for the local control plane: containerd (Debian's), a kubelet and kube-scheduler, as local
processes stopped by PID, leaving the machine as it found it.

Everything lives in a per-run directory (containerd's root, state and socket, the kubelet's root and Pod
logs, the CNI configuration); what the kubelet and containerd change elsewhere is recorded first and put
back on ``stop()`` (``e2e.cluster.host``). Images come from no registry: single-layer OCI archives
(``e2e.framework.oci``) imported with ``ctr``; Pods must say ``imagePullPolicy: Never``, run with
``hostNetwork: true`` (so no traffic leaves loopback) and tolerate ``NODE_TAINT`` (so that Pods of other
tests stay unscheduled), unless the node has a Pod network (``PodNetwork``, for ``e2e.cluster``).

The kubelet listens on 127.0.0.1; its node name and ``Hostname`` address are ``127.0.0.1``, which is where
kube-apiserver reaches it (``kubectl logs``/``exec``) with a client certificate from the run's CA. Its node
IP is a /32 on ``lo`` because it refuses a loopback one; nothing connects to that address.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from e2e.cluster import host
from e2e.cluster.controlplane import LOOPBACK, REPO_ROOT, ControlPlane
from e2e.framework import oci
from e2e.framework.processes import ProcessGroup, client_environment, free_port, stop_pid, wait_until

NODE_NAME = LOOPBACK
NODE_IP = "198.18.0.1"
"""From the benchmarking range (RFC 2544), on ``lo`` for the run: never routed anywhere."""
NODE_TAINT = {"key": "kubeflow-extension.e2e/node", "value": "local", "effect": "NoSchedule"}
NODE_TOLERATION = {**NODE_TAINT, "operator": "Equal"}
IMAGE_REGISTRY = "e2e.invalid"
PAUSE_IMAGE = f"{IMAGE_REGISTRY}/pause:1"
BUSYBOX_IMAGE = f"{IMAGE_REGISTRY}/busybox:1"
K8S_NAMESPACE = "k8s.io"
CNI_BIN_DIR = Path("/usr/lib/cni")
PROGRAMS_SOURCE = REPO_ROOT / "e2e" / "peers" / "programs"
"""A Go module of small programs for the images: ``pause``, and ``pilot-agent`` (an Istio proxy stand-in)."""
DEFAULT_BUSYBOX = Path("/bin/busybox")
READY_TIMEOUT = 120.0


class NodeSetupError(RuntimeError):
    """Something the node needs from this machine is missing."""


def containerd_config(directory: Path, socket: Path, cni_conf_dir: Path) -> str:
    """containerd 1.6 configuration: every path private to the run, the CRI plugin on cgroupfs with the
    local pause image. ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""version = 2
root = "{directory / "root"}"
state = "{directory / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{directory / "opt"}"

{cri}
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "{LOOPBACK}"
  stream_server_port = "0"

{cri[:-1]}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf_dir}"

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{cri[:-1]}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri[:-1]}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{directory / "runc"}"

{cri[:-1]}.registry]
  config_path = "{directory / "registry"}"
"""


def cni_conflist(ipam_dir: Path) -> dict[str, Any]:
    """A bridge network that makes the node Ready; the Pods here use the host network and never join it."""
    return {
        "cniVersion": "1.0.0",
        "name": "kfext-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "kfexte2e0",
                "isGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.250.0.0/24"}]],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def pod_network_conflist(ipam_dir: Path, network: PodNetwork) -> dict[str, Any]:
    """A Pod network: every Pod its own address on one bridge, the host its gateway; hairpin, so that a Pod
    reaches a Service whose endpoint it is itself."""
    return {
        "cniVersion": "1.0.0",
        "name": "kfext-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": True,
                # Pods route everything through the host: Services' addresses are routed nowhere else.
                "isDefaultGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.pod_cidr}]],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


@dataclass(frozen=True)
class PodNetwork:
    """What a node with a Pod network (e2e/cluster) hands its Pods: addresses, and the cluster's DNS."""

    pod_cidr: str = "10.244.0.0/24"
    bridge: str = "kfextpods0"
    cluster_dns: str = "10.0.0.10"
    """Inside kube-apiserver's ``--service-cluster-ip-range`` (10.0.0.0/24): the ``kube-dns`` Service."""
    cluster_domain: str = "cluster.local"


def kubelet_config(
    *,
    port: int,
    healthz_port: int,
    ca: Path,
    serving: tuple[Path, Path],
    socket: Path,
    pod_logs: Path,
    network: PodNetwork | None = None,
) -> dict[str, Any]:
    """KubeletConfiguration for this machine: cgroupfs on a cgroup v1 hybrid, swap tolerated, serving on
    127.0.0.1 to kube-apiserver's client certificate only, no DNS handed to Pods, eviction and image
    garbage collection out of the way of a small disk."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": LOOPBACK,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": LOOPBACK,
        "healthzPort": healthz_port,
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "authentication": {
            "anonymous": {"enabled": False},
            # In a cluster, metrics-server reads /metrics/resource with its ServiceAccount's token.
            "webhook": {"enabled": network is not None},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "resolvConf": "",
        "podLogsDir": str(pod_logs),
        "registerWithTaints": [NODE_TAINT],
        "evictionHard": {
            "memory.available": "10Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "nodeStatusUpdateFrequency": "5s",
        "serializeImagePulls": False,
        "rotateCertificates": False,
        # With a Pod network the node takes every Pod (no taint keeps the other tests' Pods off it: the
        # cluster has a control plane of its own) and gives them the cluster's DNS.
        **(
            {
                "registerWithTaints": [],
                "clusterDNS": [network.cluster_dns],
                "clusterDomain": network.cluster_domain,
            }
            if network
            else {}
        ),
    }


def is_static_executable(path: Path) -> bool:
    """True for an ELF file without a program interpreter (it runs in an image that has no libc)."""
    with path.open("rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
            return False
        phoff = int.from_bytes(header[32:40], "little")
        phentsize = int.from_bytes(header[54:56], "little")
        phnum = int.from_bytes(header[56:58], "little")
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    pt_interp = 3
    return all(
        int.from_bytes(table[i : i + 4], "little") != pt_interp for i in range(0, len(table), phentsize)
    )


def busybox_applets(busybox: Path) -> list[str]:
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.split()


def require_tools(busybox: Path) -> None:
    """Fail with the package to install when one of the node's programs is missing."""
    needed = {
        "containerd": "containerd",
        "ctr": "containerd",
        "runc": "runc",
        "go": "golang",
        "ip": "iproute2",
    }
    missing = [f"{tool} (package {package})" for tool, package in needed.items() if not shutil.which(tool)]
    if not (CNI_BIN_DIR / "bridge").is_file():
        missing.append(f"{CNI_BIN_DIR}/bridge (package containernetworking-plugins)")
    if not busybox.is_file() or not is_static_executable(busybox):
        missing.append(f"a static BusyBox at {busybox} (package busybox-static)")
    if os.geteuid() != 0:
        missing.append("root (the kubelet and containerd run as root)")
    if missing:
        raise NodeSetupError("the local node needs: " + ", ".join(missing))


class Node(ProcessGroup):
    """containerd + kubelet + kube-scheduler joined to ``plane``; ``start()``/``stop()`` or ``with``."""

    def __init__(
        self,
        plane: ControlPlane,
        *,
        busybox: Path = DEFAULT_BUSYBOX,
        keep_run_dir: bool = False,
        network: PodNetwork | None = None,
        claim: host.HostClaim | None = None,
    ) -> None:
        """``network``: a Pod network instead of host-network Pods only. ``claim``: the host lock is
        held and the host recorded by the caller, which puts it back after ``stop()``."""
        super().__init__()
        self.plane = plane
        self.network = network
        self._owns_host = claim is None
        self.busybox = busybox
        require_tools(busybox)
        kubelet = plane.versions.kubernetes_dir / "bin" / "kubelet"
        scheduler = plane.versions.kubernetes_dir / "bin" / "kube-scheduler"
        self.binaries = {"kubelet": kubelet, "kube-scheduler": scheduler}
        missing = [str(path) for path in self.binaries.values() if not path.is_file()]
        if missing:
            raise NodeSetupError(
                f"not built: {', '.join(missing)}; build with e2e/build-control-plane.sh node"
            )
        self.keep_run_dir = keep_run_dir
        shm = Path("/dev/shm")
        self.run_dir = Path(tempfile.mkdtemp(prefix="kfext-node-", dir=shm if shm.is_dir() else None))
        self.logs_dir = self.run_dir / "logs"
        self.containerd_dir = self.run_dir / "containerd"
        self.socket = self.run_dir / "containerd.sock"
        self.kubelet_dir = self.run_dir / "kubelet"
        self._claim = claim

    # -- lifecycle ---------------------------------------------------------------------------------

    def _start(self) -> None:
        # One node a machine; what the kubelet changes on the host is recorded first, to be put back.
        if self._owns_host:
            self._claim = host.HostClaim(NODE_IP)
        t0 = time.monotonic()
        cni_dir = self.run_dir / "cni"
        (cni_dir / "net.d").mkdir(parents=True)
        conflist = (
            pod_network_conflist(cni_dir / "ipam", self.network)
            if self.network
            else cni_conflist(cni_dir / "ipam")
        )
        (cni_dir / "net.d" / "10-kfext-e2e.conflist").write_text(json.dumps(conflist))
        (self.containerd_dir / "registry").mkdir(parents=True)
        config = self.containerd_dir / "config.toml"
        config.write_text(containerd_config(self.containerd_dir, self.socket, cni_dir / "net.d"))
        assert self._claim is not None
        self._claim.changes.add_node_address()

        containerd = self._spawn("containerd", ["containerd", f"--config={config}"])
        wait_until(
            lambda: self.socket.exists() and self.ctr("version", check=False).returncode == 0,
            timeout=READY_TIMEOUT,
            what="containerd",
            watch=[containerd],
        )
        self.timings["containerd"] = time.monotonic() - t0
        self.import_image(
            PAUSE_IMAGE,
            oci.Layer(files={"/pause": self.programs / "pause"}),
            oci.ImageConfig(entrypoint=["/pause"]),
        )
        self.import_image(BUSYBOX_IMAGE, self.busybox_layer(), oci.ImageConfig(cmd=["sh"]))
        self.timings["images"] = time.monotonic() - t0

        scheduler_port = free_port()
        scheduler = self._spawn(
            "kube-scheduler",
            [
                self.binaries["kube-scheduler"],
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--authentication-kubeconfig={self.plane.kubeconfig}",
                f"--authorization-kubeconfig={self.plane.kubeconfig}",
                "--leader-elect=false",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={scheduler_port}",
                f"--cert-dir={self.run_dir / 'kube-scheduler'}",
                "--v=1",
            ],
        )

        kubelet_config_file = self.run_dir / "kubelet-config.json"
        serving = self.plane.ca.issue(
            "kubelet-serving", NODE_NAME, ip_addresses=[LOOPBACK], dns_names=["localhost"], server=True
        )
        kubelet_config_file.write_text(
            json.dumps(
                kubelet_config(
                    port=free_port(),
                    healthz_port=free_port(),
                    ca=self.plane.ca.files.cert,
                    serving=(serving.cert, serving.key),
                    socket=self.socket,
                    pod_logs=self.run_dir / "pod-logs",
                    network=self.network,
                ),
                indent=2,
            )
        )
        kubeconfig = self.run_dir / "kubelet.kubeconfig"
        kubeconfig.write_text(self.plane.client_kubeconfig(f"system:node:{NODE_NAME}", ["system:nodes"]))
        kubeconfig.chmod(0o600)
        kubelet = self._spawn(
            "kubelet",
            [
                self.binaries["kubelet"],
                f"--config={kubelet_config_file}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_dir}",
                f"--cert-dir={self.kubelet_dir / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )
        wait_until(
            self.ready, timeout=READY_TIMEOUT, what="node Ready", watch=[containerd, scheduler, kubelet]
        )
        self.timings["kubelet"] = time.monotonic() - t0

    def ready(self) -> bool:
        """Ready, with no taint but ours (the node-lifecycle controller has lifted `not-ready`)."""
        node = self.plane.kubectl.get("node", NODE_NAME)
        if node is None:
            return False
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        taints = [t["key"] for t in node.get("spec", {}).get("taints", [])]
        return conditions.get("Ready") == "True" and taints == ([] if self.network else [NODE_TAINT["key"]])

    def stop(self) -> None:
        """Stop kubelet and scheduler, every container, containerd; unmount and remove what they made; put
        the host back. Raises if the host could not be put back. Idempotent."""
        if not self._started:
            return
        problems: list[str] = []
        try:
            for process in reversed(self.processes):
                if process.name != "containerd":
                    process.stop()
            if any(p.name == "containerd" and p.alive for p in self.processes):
                problems += self._remove_containers()
            for process in self.processes:
                process.stop()
            for pid in self._shim_pids():
                stop_pid(pid)
            problems += host.unmount_beneath([self.run_dir])
        finally:
            if self._claim is not None and self._owns_host:
                problems += self._claim.release()
            self._stopped()
        if not self.keep_run_dir and not self._failed and not problems:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            print(f"node files kept in {self.run_dir}", file=sys.stderr)
        if problems:
            raise RuntimeError("the local node left the host changed:\n  " + "\n  ".join(problems))

    def _remove_containers(self) -> list[str]:
        """Kill and delete every task and container (Pod sandboxes included) through containerd."""
        problems = []
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
            deadline = time.monotonic() + 30
            while (deleted := self.ctr("tasks", "delete", "--force", task, check=False)).returncode != 0:
                if "not found" in deleted.stderr:  # it exited and was cleaned up meanwhile
                    break
                if time.monotonic() > deadline:
                    problems.append(f"container task {task} not deleted: {deleted.stderr.strip()}")
                    break
                time.sleep(0.5)
        containers = self.ctr("containers", "ls", "-q", check=False).stdout.split()
        if containers:
            self.ctr("containers", "delete", *containers, check=False)
        return problems

    def _shim_pids(self) -> list[int]:
        """containerd shims serving this run's containerd (they outlive it by design)."""
        pids = []
        needle = f"\0{self.socket}\0".encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if needle in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    # -- images ------------------------------------------------------------------------------------

    def ctr(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``ctr`` against this run's containerd, in the namespace the kubelet uses."""
        argv = ["ctr", f"--address={self.socket}", f"--namespace={K8S_NAMESPACE}", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def import_image(self, reference: str, layer: oci.Layer, config: oci.ImageConfig) -> None:
        """Build a single-layer image and import it into the kubelet's namespace."""
        archive = self.run_dir / "images" / (reference.rsplit("/", 1)[-1].replace(":", "-") + ".tar")
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(oci.image_archive(reference, layer, config))
        self.ctr("images", "import", str(archive))

    @cached_property
    def applets(self) -> list[str]:
        return busybox_applets(self.busybox)

    def busybox_layer(self, extra: oci.Layer | None = None) -> oci.Layer:
        """BusyBox's root file system (this node's BusyBox) plus ``extra``."""
        return oci.busybox_layer(self.busybox, self.applets, extra)

    @cached_property
    def programs(self) -> Path:
        """The directory of the ``e2e/peers/programs`` binaries, built for this run (seconds with Go's
        cache)."""
        output = self.run_dir / "programs"
        env = {**client_environment(), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", f"{output}/", "./cmd/..."],
            cwd=PROGRAMS_SOURCE,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        return output


def pod(
    name: str,
    containers: Sequence[Mapping[str, Any]],
    *,
    namespace: str,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod for this node: host network, our taint tolerated, images never pulled, no restarts."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": pod_spec(containers, **spec),
    }


def pod_spec(containers: Sequence[Mapping[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "hostNetwork": True,
        "restartPolicy": "Never",
        "tolerations": [NODE_TOLERATION],
        "terminationGracePeriodSeconds": 5,
        "containers": [{"imagePullPolicy": "Never", **c} for c in containers],
        **spec,
    }
