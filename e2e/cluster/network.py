"""The Pod network's host side: its bridge with the Pods' gateway, a route that keeps Service addresses on
the machine, and a guard that no Pod packet leaves it.

A ClusterIP is nobody's address: kube-proxy's rules rewrite it to an endpoint's. Until they exist (or for a
Service with no endpoint) the host would send such a packet to its default route, off the machine. So the
Service range is routed onto the Pod bridge, where nothing answers for it, and forwarded Pod traffic may
leave only through that bridge. The CNI bridge plugin reuses the bridge made here and keeps its address.
Everything here is removed by ``e2e.cluster.host.HostChanges.restore()`` (links named ``kfext*``,
netfilter tables).
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from e2e.cluster.node import PodNetwork

SERVICE_CIDR = "10.0.0.0/24"
"""kube-apiserver's ``--service-cluster-ip-range`` (e2e.cluster.controlplane)."""
GUARD_COMMENT = "kfext: Pod traffic stays on this machine"


def gateway(network: PodNetwork) -> str:
    """The host's address on the bridge: the first of the Pod range, as the bridge plugin chooses it."""
    return str(next(ipaddress.ip_network(network.pod_cidr).hosts()))


def guard_target() -> tuple[str, ...]:
    return ("-m", "comment", "--comment", GUARD_COMMENT, "-j", "DROP")


def setup_commands(network: PodNetwork) -> list[list[str]]:
    """The commands that make the host side of ``network`` (pure, for the tests)."""
    prefix = ipaddress.ip_network(network.pod_cidr).prefixlen
    bridge = network.bridge
    return [
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{gateway(network)}/{prefix}", "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
        ["ip", "route", "add", SERVICE_CIDR, "dev", bridge, "src", gateway(network)],
        # Forwarded Pod traffic leaves only through the bridge (Pod to Pod, or back to a Pod after DNAT).
        [*("iptables", "-A", "FORWARD", "-s", network.pod_cidr, "!", "-o", bridge), *guard_target()],
    ]


def enable_bridge_netfilter() -> None:
    """Bridged traffic passes iptables: a Pod reaching a Service whose endpoint is on the same bridge gets
    its reply translated back (recorded and put back by ``e2e.cluster.host``)."""
    Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")


def set_up(network: PodNetwork) -> None:
    """Make the bridge, the Service route and the guard; raise with the failing command's message."""
    for argv in setup_commands(network):
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    enable_bridge_netfilter()
