"""Realistic Katib, Kale, Istio and Kubeflow object shapes, built from what each version is documented
to send."""

from __future__ import annotations

import copy
from typing import Any

# What Kubeflow documents for its access-ml-pipeline PodDefault: the token volume, its mount, the variable.
KUBEFLOW_VOLUME: dict[str, Any] = {
    "name": "volume-kf-pipeline-token",
    "projected": {
        "sources": [
            {
                "serviceAccountToken": {
                    "path": "token",
                    "expirationSeconds": 7200,
                    "audience": "pipelines.kubeflow.org",
                }
            }
        ]
    },
}
KUBEFLOW_MOUNT: dict[str, Any] = {
    "name": "volume-kf-pipeline-token",
    "mountPath": "/var/run/secrets/kubeflow/pipelines",
    "readOnly": True,
}
KUBEFLOW_ENV: dict[str, str] = {
    "name": "KF_PIPELINES_SA_TOKEN_PATH",
    "value": "/var/run/secrets/kubeflow/pipelines/token",
}

KATIB_VERSIONS = ("v0.9", "v0.10", "v0.11", "v0.14", "v0.17", "v0.19")

COLLECTOR_IMAGES = {
    "v0.9": "gcr.io/kubeflow-images-public/katib/v1alpha3/file-metrics-collector:917164a",
    "v0.10": "docker.io/kubeflowkatib/file-metrics-collector:v1beta1-a96ff59",
    "v0.11": "docker.io/kubeflowkatib/file-metrics-collector:v0.11.1",
    "v0.14": "docker.io/kubeflowkatib/file-metrics-collector:v0.14.0",
    "v0.17": "docker.io/kubeflowkatib/file-metrics-collector:v0.17.0",
    "v0.19": "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0",
}
TFEVENT_IMAGE = "ghcr.io/kubeflow/katib/tfevent-metrics-collector:v0.19.0"
METRICS_FORMAT = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"


def minor(version: str) -> int:
    """``"v0.17"`` -> 17."""
    return int(version.rsplit(".", 1)[1])


def collector_args(version: str, trial: str = "random-exp-x7k2p") -> list[str]:
    """The arguments Katib's pod webhook gives the collector (getMetricsCollectorArgs), by version."""
    if version == "v0.9":
        return [
            "-t",
            trial,
            "-m",
            "accuracy;loss",
            "-s",
            "katib-db-manager.kubeflow:6789",
            "-path",
            "/var/log/katib/metrics.log",
        ]
    args = [
        "-t",
        trial,
        "-m",
        "accuracy;loss",
        "-o-type",
        "maximize",
        "-s-db",
        "katib-db-manager.kubeflow:6789",
        "-path",
        "/var/log/katib/metrics.log",
        "-f",
        METRICS_FORMAT,
    ]
    if minor(version) >= 14:
        args += ["-format", "TEXT"]
    if version in ("v0.11", "v0.17"):
        args += ["-w", "true"]  # waitAllProcesses set in katib-config
    if version in ("v0.17", "v0.19"):
        args += ["-stop-rule", "accuracy;0.8;less;3", "-s-earlystop", "random-exp:6788"]
    return args


def collector(version: str, name: str = "metrics-logger-and-collector") -> dict[str, Any]:
    return {
        "name": name,
        "image": COLLECTOR_IMAGES[version],
        "imagePullPolicy": "IfNotPresent",
        "args": collector_args(version),
        "resources": {"limits": {"cpu": "500m", "ephemeral-storage": "5Gi", "memory": "100Mi"}},
        "volumeMounts": [{"name": "metrics-volume", "mountPath": "/var/log/katib"}],
    }


def istio_proxy(native: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.26.1",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
    }
    if native:
        container["restartPolicy"] = "Always"
    return container


def kale_command(kale: str) -> str:
    """Kale's single-string trial command (<= 0.6: rpc/katib.py RAW_TEMPLATE; >= 0.7: JOB_CMD)."""
    if kale == "0.6":
        sep = " " * 16
        return (
            f'python3 -u -c "from kale.common.kfputils{sep}import create_and_wait_kfp_run;{sep}'
            f"create_and_wait_kfp_run({' ' * 20}pipeline_id='3f2c1b7e-52a1-4c4e-9b0a-6a7c58e1d2f4',{' ' * 20}"
            f"run_name='random-exp-x7k2p',{' ' * 20}experiment_name='kale-exp', lr='0.01', "
            f"momentum='0.9'{' ' * 16})\""
        )
    sep = " " * 15
    return (
        f'python3 -u -c "from kale.common.katibutils import create_and_wait_kfp_run;{sep}'
        "create_and_wait_kfp_run(lr='0.01', momentum='0.9', pipeline_id='3f2c1b7e', "
        "version_id='8d4e', run_name='random-exp-x7k2p', experiment_name='kale-exp', "
        "api_version='v1beta1')\""
    )


def katib_wrapped(command: str, log_dir: str = "/var/log/katib") -> dict[str, Any]:
    """The primary container's command after Katib's wrapWorkerContainer (StdOut collector)."""
    return {
        "command": ["sh", "-c"],
        "args": [f"{command} 1>{log_dir}/metrics.log 2>&1 && echo completed > {log_dir}/$$$$.pid"],
    }


def trial_pod(
    version: str = "v0.19",
    proxy: str | None = "classic",
    kale: str | None = None,
    tfevent: bool = False,
) -> dict[str, Any]:
    """A trial Pod as admitted after Istio's and Katib's webhooks (both sort before ours)."""
    main: dict[str, Any] = {
        "name": "main" if kale != "0.6" else "random-exp-x7k2p",
        "image": "docker.io/kubeflowkatib/mxnet-mnist:v0.19.0",
    }
    if kale:
        main["image"] = "gcr.io/arrikto/katib-kfp-trial:a7f7bb79-d9bf99ac"
        main.update(katib_wrapped(kale_command(kale)))
    else:
        main.update(katib_wrapped("python3 /opt/mxnet-mnist/mnist.py --lr=0.01 --num-layers=3"))
    labels = {"controller-uid": "5d6a", "job-name": "random-exp-x7k2p"}
    if minor(version) >= 15:
        labels |= {
            "katib.kubeflow.org/experiment": "random-exp",
            "katib.kubeflow.org/trial": "random-exp-x7k2p",
        }
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "random-exp-x7k2p-",
            "namespace": "kubeflow-user-example-com",
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "random-exp-x7k2p",
                    "uid": "5d6a",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "default-editor",
            "shareProcessNamespace": True,
            "containers": [main],
            "volumes": [{"name": "metrics-volume", "emptyDir": {}}],
        },
    }
    if proxy is not None:
        pod["metadata"]["labels"]["sidecar.istio.io/inject"] = "true"
        pod["metadata"]["annotations"] = {"sidecar.istio.io/inject": "true", "sidecar.istio.io/status": "{}"}
        pod["spec"]["initContainers"] = [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.26.1"}]
        if proxy == "native":
            pod["spec"]["initContainers"].append(istio_proxy(native=True))
        else:
            pod["spec"]["containers"].append(istio_proxy())
    if tfevent:
        metrics = collector(version, name="metrics-collector")
        metrics["image"] = TFEVENT_IMAGE
        metrics["args"] = [
            "-t",
            "random-exp-x7k2p",
            "-m",
            "accuracy",
            "-o-type",
            "maximize",
            "-s-db",
            "katib-db-manager.kubeflow:6789",
            "-path",
            "/var/log/katib/tfevent",
        ]
        pod["spec"]["containers"].append(metrics)
    else:
        pod["spec"]["containers"].append(collector(version))
    return pod


def trial_job(api_version: str = "kubeflow.org/v1beta1", kale: str | None = "0.7") -> dict[str, Any]:
    """A trial Job as Katib's trial controller creates it: the template unchanged, one controller ownerRef."""
    container: dict[str, Any] = {"name": "main", "image": "gcr.io/arrikto/katib-kfp-trial:a7f7bb79-d9bf99ac"}
    if kale:
        container["command"] = [kale_command(kale)]
    template_metadata: dict[str, Any] = {}
    if kale:
        template_metadata = {
            "annotations": {"sidecar.istio.io/inject": "false"},
            "labels": {"access-ml-pipeline": "true"},
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "random-exp-x7k2p",
            "namespace": "kubeflow-user-example-com",
            "ownerReferences": [
                {
                    "apiVersion": api_version,
                    "kind": "Trial",
                    "name": "random-exp-x7k2p",
                    "uid": "0b1e",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": template_metadata,
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "pipeline-runner",
                    "containers": [container],
                },
            },
        },
    }


def notebook_pod(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "my-notebook-0",
            "namespace": "kubeflow-user-example-com",
            "labels": {"notebook-name": "my-notebook", "statefulset": "my-notebook"} | (labels or {}),
        },
        "spec": {
            "containers": [{"name": "my-notebook", "image": "kubeflownotebookswg/jupyter-scipy:v1.9.0"}]
        },
    }


def review(
    obj: dict[str, Any] | None, api_version: str = "admission.k8s.io/v1", **request: Any
) -> dict[str, Any]:
    """An AdmissionReview as the API server sends it."""
    kind = (obj or {}).get("kind", "Pod")
    group = "batch" if kind == "Job" else ""
    body = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
        "namespace": "kubeflow-user-example-com",
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kubeflow:katib-controller"},
        "object": copy.deepcopy(obj),
        "dryRun": False,
    } | request
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": body}


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` in command and args (third_party/forked/golang/expansion):
    a defined ``$(VAR)`` is replaced, an undefined one kept, ``$$`` becomes ``$``, any other ``$`` stays."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env.get(name, f"$({name})"))
                    i = end + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)
