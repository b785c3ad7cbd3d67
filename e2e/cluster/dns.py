"""Cluster DNS: CoreDNS (built from its Go module, `build-control-plane.sh cluster`) as a host-network Pod
behind the ``kube-dns`` Service at the kubelet's ``clusterDNS`` address, as kubeadm's add-on runs it but on
the node's network. Metacontroller reaches the hooks at ``http://<service>.<namespace>:<port>`` (v1.5.20
``pkg/hooks/webhook.go``), so without this no hook is called in a cluster."""

from __future__ import annotations

from typing import Any

from e2e.cluster.node import IMAGE_REGISTRY, NODE_IP, PodNetwork
from e2e.framework import oci

IMAGE = f"{IMAGE_REGISTRY}/coredns:1"
NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}


def corefile(network: PodNetwork, health_port: int, ready_port: int) -> str:
    """Names in the cluster domain from the API; nothing else (no ``forward``: no query leaves the machine,
    a name outside the cluster gets SERVFAIL). Listens on the node's address only."""
    return f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {network.cluster_domain} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


def image_layer(binary: Any) -> oci.Layer:
    return oci.Layer(files={"/coredns": binary})


def image_config() -> oci.ImageConfig:
    return oci.ImageConfig(entrypoint=["/coredns"], cmd=["-conf", "/etc/coredns/Corefile"])


def manifests(network: PodNetwork, health_port: int, ready_port: int) -> list[dict[str, Any]]:
    """Its ServiceAccount, read-only RBAC, Corefile, Deployment and Service."""
    meta = {"namespace": NAMESPACE}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "e2e:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "e2e:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "e2e:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", **meta},
            "data": {"Corefile": corefile(network, health_port, ready_port)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", **meta, "labels": LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "hostNetwork": True,
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": IMAGE,
                                "imagePullPolicy": "Never",
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                                "readinessProbe": {
                                    "httpGet": {"host": "127.0.0.1", "path": "/ready", "port": ready_port},
                                    "periodSeconds": 2,
                                },
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", **meta, "labels": LABELS},
            "spec": {
                "clusterIP": network.cluster_dns,
                "selector": LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]
