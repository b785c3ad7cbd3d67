"""Realistic AdmissionReview bodies, built on the object shapes the webhook's tests use.

Objects as kube-apiserver sends them after Istio's injector and Katib's webhook have run: the injected
proxy with its environment, mounts and volumes, the service-account token volume, Istio's status
annotation. Sizes are brought to the targets with more environment variables on the main container
(trial images are often configured that way), so the structure the webhook walks stays the same.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson

from tests.webhook.katib_objects import istio_proxy, notebook_pod, review, trial_job, trial_pod

NAMESPACE = "kubeflow-user-example-com"


@dataclass(frozen=True)
class Body:
    name: str
    description: str
    kind: str
    payload: bytes
    expect_patch: bool

    @property
    def kib(self) -> float:
        return len(self.payload) / 1024


def _proxy_env() -> list[dict[str, Any]]:
    field_refs = {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "INSTANCE_IP": "status.podIP",
        "SERVICE_ACCOUNT": "spec.serviceAccountName",
        "HOST_IP": "status.hostIP",
        "ISTIO_CPU_LIMIT": "",
    }
    env: list[dict[str, Any]] = [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
    ]
    for name, path in field_refs.items():
        if path:
            env.append({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
        else:
            env.append(
                {"name": name, "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}}
            )
    env += [
        {"name": "PROXY_CONFIG", "value": "{}\n"},
        {"name": "ISTIO_META_POD_PORTS", "value": "[\n]"},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": "main,metrics-logger-and-collector"},
        {
            "name": "GOMEMLIMIT",
            "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.memory"}},
        },
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}},
        {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
        {
            "name": "ISTIO_META_NODE_NAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
        },
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": "random-exp-x7k2p"},
        {
            "name": "ISTIO_META_OWNER",
            "value": f"kubernetes://apis/batch/v1/namespaces/{NAMESPACE}/jobs/random-exp",
        },
        {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
        {"name": "TRUST_DOMAIN", "value": "cluster.local"},
    ]
    return env


PROXY_MOUNTS = [
    {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
    {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
    {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
    {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
    {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
    {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
    {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
    {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
]
TOKEN_MOUNT = {
    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    "name": "kube-api-access-7xk2p",
    "readOnly": True,
}


def _istio_volumes() -> list[dict[str, Any]]:
    return [
        {"emptyDir": {}, "name": "workload-socket"},
        {"emptyDir": {}, "name": "credential-socket"},
        {"emptyDir": {}, "name": "workload-certs"},
        {"emptyDir": {"medium": "Memory"}, "name": "istio-envoy"},
        {"emptyDir": {}, "name": "istio-data"},
        {
            "downwardAPI": {
                "defaultMode": 420,
                "items": [
                    {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}, "path": "labels"},
                    {
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"},
                        "path": "annotations",
                    },
                ],
            },
            "name": "istio-podinfo",
        },
        {
            "name": "istio-token",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": "istio-token",
                        }
                    }
                ],
            },
        },
        {"configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}, "name": "istiod-ca-cert"},
        {
            "name": "kube-api-access-7xk2p",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            "name": "kube-root-ca.crt",
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    "path": "namespace",
                                }
                            ]
                        }
                    },
                ],
            },
        },
    ]


def injected_proxy() -> dict[str, Any]:
    """The ``istio-proxy`` container roughly as istiod 1.2x injects it."""
    proxy = istio_proxy()
    proxy["args"] = [
        "proxy",
        "sidecar",
        "--domain",
        "$(POD_NAMESPACE).svc.cluster.local",
        "--proxyLogLevel=warning",
        "--proxyComponentLogLevel=misc:error",
        "--log_output_level=default:info",
    ]
    proxy.update(
        env=_proxy_env(),
        imagePullPolicy="IfNotPresent",
        readinessProbe={
            "failureThreshold": 4,
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15,
            "timeoutSeconds": 3,
        },
        resources={"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
        securityContext={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": 1337,
            "runAsNonRoot": True,
            "runAsUser": 1337,
        },
        terminationMessagePath="/dev/termination-log",
        terminationMessagePolicy="File",
        volumeMounts=[*PROXY_MOUNTS, TOKEN_MOUNT],
    )
    return proxy


ISTIO_STATUS = (
    '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket",'
    '"credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token",'
    '"istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}'
)


def _injected(pod: dict[str, Any]) -> dict[str, Any]:
    """Replace the minimal proxy with a fully injected one; add the volumes and Istio's annotations."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    spec["containers"] = [c if c["name"] != "istio-proxy" else injected_proxy() for c in spec["containers"]]
    if not any(c["name"] == "istio-proxy" for c in spec["containers"]):
        spec["containers"].append(injected_proxy())
    spec.setdefault("initContainers", [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.26.1"}])
    spec["initContainers"][0].update(
        args=[
            "istio-iptables",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "15090,15021,15020",
            "--log_output_level=default:info",
        ],
        securityContext={
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    )
    for container in spec["containers"]:
        if container["name"] != "istio-proxy":
            container.setdefault("volumeMounts", []).append(TOKEN_MOUNT)
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
    spec["volumes"] = [*spec.get("volumes", []), *_istio_volumes()]
    spec.update(
        dnsPolicy="ClusterFirst",
        enableServiceLinks=True,
        preemptionPolicy="PreemptLowerPriority",
        priority=0,
        schedulerName="default-scheduler",
        securityContext={"fsGroup": 100},
        terminationGracePeriodSeconds=30,
        tolerations=[
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
        ],
    )
    metadata = pod["metadata"]
    metadata.setdefault("labels", {}).update(
        {
            "security.istio.io/tlsMode": "istio",
            "service.istio.io/canonical-name": "random-exp-x7k2p",
            "service.istio.io/canonical-revision": "latest",
        }
    )
    metadata.setdefault("annotations", {}).update(
        {
            "kubectl.kubernetes.io/default-container": "main",
            "prometheus.io/path": "/stats/prometheus",
            "prometheus.io/port": "15020",
            "prometheus.io/scrape": "true",
            "sidecar.istio.io/status": ISTIO_STATUS,
        }
    )
    return pod


def pad(obj: dict[str, Any], containers: list[dict[str, Any]], target_bytes: int) -> dict[str, Any]:
    """Add environment variables to ``containers[0]`` until ``review(obj)`` is about ``target_bytes``."""
    env = containers[0].setdefault("env", [])
    index = 0
    while len(orjson.dumps(review(obj))) < target_bytes:
        env.append({"name": f"TRIAL_SETTING_{index:04d}", "value": f"value-{index:04d}-" + "x" * 40})
        index += 1
    return obj


def _sized(obj: dict[str, Any], path: tuple[str, ...], target: int) -> dict[str, Any]:
    holder: Any = obj
    for key in path:
        holder = holder[key]
    return pad(obj, holder, target)


def trial_pod_body(target_bytes: int) -> dict[str, Any]:
    """A Katib v0.19 trial Pod with a classic Istio sidecar and Kale's program, about ``target_bytes``.

    From 16 KiB up the proxy is injected in full; below, the minimal shape of the webhook's tests is used.
    """
    pod = trial_pod("v0.19", kale="0.7")
    return _sized(_injected(pod) if target_bytes >= 16 * 1024 else pod, ("spec", "containers"), target_bytes)


def unrelated_pod() -> dict[str, Any]:
    """A web server Pod in a profile namespace, behind Istio: none of the mutations apply."""
    pod = trial_pod("v0.19")
    pod["metadata"] = {
        "name": "web-7d4b9c8f6d-x2v9q",
        "namespace": NAMESPACE,
        "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d", "sidecar.istio.io/inject": "true"},
    }
    pod["spec"]["containers"] = [
        {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}
    ]
    pod["spec"]["volumes"] = []
    return _injected(pod)


def notebook_body() -> dict[str, Any]:
    """A notebook Pod from the notebook controller (its Istio proxy left out: that alone is 5 KiB)."""
    pod = notebook_pod()
    pod["spec"]["containers"][0].update(
        env=[{"name": "NB_PREFIX", "value": "/notebook/kubeflow-user-example-com/my-notebook"}],
        resources={
            "limits": {"cpu": "600m", "memory": "1288490188800m"},
            "requests": {"cpu": "500m", "memory": "1Gi"},
        },
        volumeMounts=[
            {"mountPath": "/dev/shm", "name": "dshm"},
            {"mountPath": "/home/jovyan", "name": "my-notebook-volume"},
        ],
    )
    pod["spec"]["volumes"] = [
        {"emptyDir": {"medium": "Memory"}, "name": "dshm"},
        {"name": "my-notebook-volume", "persistentVolumeClaim": {"claimName": "my-notebook-volume"}},
    ]
    return _sized(pod, ("spec", "containers"), 5 * 1024)


def trial_job_body() -> dict[str, Any]:
    job = trial_job()
    return _sized(job, ("spec", "template", "spec", "containers"), 4 * 1024)


def _body(name: str, description: str, obj: dict[str, Any], expect_patch: bool) -> Body:
    return Body(name, description, obj["kind"], orjson.dumps(review(obj)), expect_patch)


def all_bodies() -> list[Body]:
    """Notebook, trial Job, unrelated Pod, and the trial Pod at 5, 20 and 100 KiB (for flatness)."""
    return [
        _body("notebook-pod", "notebook Pod (label)", notebook_body(), True),
        _body("trial-job", "Katib trial Job (template)", trial_job_body(), True),
        _body("unrelated-pod", "unrelated Pod (no change)", unrelated_pod(), False),
        _body("trial-pod-5k", "trial Pod, collector + Kale", trial_pod_body(5 * 1024), True),
        _body("trial-pod-20k", "trial Pod, collector + Kale", trial_pod_body(20 * 1024), True),
        _body("trial-pod-100k", "trial Pod, collector + Kale", trial_pod_body(100 * 1024), True),
    ]


def trial_pod_object(target_bytes: int = 20 * 1024) -> dict[str, Any]:
    """The trial Pod alone (for creating it through kube-apiserver)."""
    return trial_pod_body(target_bytes)
