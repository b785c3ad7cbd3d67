"""Kyverno's admission controller as a local process against the local control plane (the optional
Kyverno side of the pod-creation benchmark).

Built on demand by ``bench/build-kyverno.sh`` (Go module proxy, cached outside the repository; not in CI).
It runs with the flags and configuration its Helm chart renders by default, except for what running
outside a cluster needs; every difference is listed in ``bench/README.md`` and in ``DIFFERENCES``. With
``--serverIP=127.0.0.1:PORT`` it makes its own CA and serving certificate and registers its webhook
configurations with ``url: https://127.0.0.1:PORT/...``; every listener is bound to 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import HOST, REPO_ROOT, default_environment, free_port
from webhook.mutations import ISTIO_INJECT

NAMESPACE = "kyverno"
ADMISSION_CONTROLLER = "kyverno-admission-controller"
SELECT_LABEL = "kfext-bench-kyverno"
"""Kyverno's webhooks select only namespaces with this label (the benchmark's own)."""
BUILD_SCRIPT = REPO_ROOT / "bench" / "build-kyverno.sh"

DIFFERENCES = (
    "a local process with the admin kubeconfig instead of a Deployment with its ServiceAccount and RBAC",
    "`--serverIP=127.0.0.1:PORT`, `--webhookServerHost=127.0.0.1` and a free `--webhookServerPort` "
    "instead of the Service on 443 and port 9443",
    "metrics and controller-runtime metrics bound to 127.0.0.1 on free ports instead of :8000 and :8080",
    "the environment the Deployment sets from the downward API, set by hand (namespace `kyverno`, "
    "Pod name `kyverno-admission-controller-local`)",
    "the `webhooks` namespace selector of its ConfigMap selects the benchmark's namespaces only "
    "(the chart's default selects every namespace but `kyverno`)",
    "`resourceFilters` keep the chart's generic entries; those naming the chart's own Kyverno objects "
    "are left out, as none exist here",
    "`--autoMemLimitEnabled=false`: the chart's container limit is what it would size itself from",
    "no background, reports or cleanup controller processes (the chart's other Deployments)",
)


def version() -> str:
    from e2e.framework.versions import VERSIONS_FILE, parse_env_file

    return parse_env_file(VERSIONS_FILE.read_text())["KYVERNO_VERSION"]


def cache_dir() -> Path:
    base = Path(os.environ.get("KUBEFLOW_EXTENSION_CACHE", "~/.cache/kubeflow-extension")).expanduser()
    return base / f"kyverno-{version()}"


def ensure_built() -> Path:
    """The binary, built first (niced: it takes minutes of both cores) when the cache lacks it."""
    binary = cache_dir() / "bin" / "kyverno"
    if not binary.exists():
        subprocess.run(["nice", "-n", "10", "bash", str(BUILD_SCRIPT)], check=True)
    return binary


# The chart's generic resource filters (values.yaml `config.resourceFilters`, first part).
RESOURCE_FILTERS = (
    "[Event,*,*]",
    "[*/*,kube-system,*]",
    "[*/*,kube-public,*]",
    "[*/*,kube-node-lease,*]",
    "[Node,*,*]",
    "[Node/?*,*,*]",
    "[APIService,*,*]",
    "[APIService/?*,*,*]",
    "[TokenReview,*,*]",
    "[SubjectAccessReview,*,*]",
    "[SelfSubjectAccessReview,*,*]",
    "[Binding,*,*]",
    "[Pod/binding,*,*]",
    "[ReplicaSet,*,*]",
    "[ReplicaSet/?*,*,*]",
    "[EphemeralReport,*,*]",
    "[ClusterEphemeralReport,*,*]",
)

# The chart's default metric exposure: these drop the resource namespace dimension.
_NAMESPACELESS = (
    "kyverno_policy_execution_duration_seconds",
    "kyverno_mutating_policy_execution_duration_seconds",
    "kyverno_admission_review_duration_seconds",
    "kyverno_admission_requests_total",
)


def config_documents() -> list[dict[str, Any]]:
    """Kyverno's namespace and the two ConfigMaps its chart renders by default (webhook selector apart)."""
    import orjson

    webhooks = {"namespaceSelector": {"matchExpressions": [{"key": SELECT_LABEL, "operator": "Exists"}]}}
    exposure = {name: {"disabledLabelDimensions": ["resource_namespace"]} for name in _NAMESPACELESS}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kyverno", "namespace": NAMESPACE},
            "data": {
                "enableDefaultRegistryMutation": "true",
                "defaultRegistry": "docker.io",
                "generateSuccessEvents": "false",
                "excludeGroups": "system:nodes",
                "resourceFilters": "".join(RESOURCE_FILTERS),
                "webhooks": orjson.dumps(webhooks).decode(),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kyverno-metrics", "namespace": NAMESPACE},
            "data": {
                "namespaces": '{"exclude":[],"include":[]}',
                "metricsExposure": orjson.dumps(exposure).decode(),
                "bucketBoundaries": "0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 25, 30",
            },
        },
    ]


def chart_flags() -> list[str]:
    """The admission controller's arguments as the chart renders them with its default values."""
    return [
        f"--caSecretName=kyverno-svc.{NAMESPACE}.svc.kyverno-tls-ca",
        f"--tlsSecretName=kyverno-svc.{NAMESPACE}.svc.kyverno-tls-pair",
        "--tlsKeyAlgorithm=RSA",
        f"--backgroundServiceAccountName=system:serviceaccount:{NAMESPACE}:kyverno-background-controller",
        f"--reportsServiceAccountName=system:serviceaccount:{NAMESPACE}:kyverno-reports-controller",
        "--servicePort=443",
        "--resyncPeriod=15m",
        "--crdWatcher=false",
        "--disableMetrics=false",
        "--otelConfig=prometheus",
        "--admissionReports=true",
        "--autoUpdateWebhooks=true",
        "--enableConfigMapCaching=true",
        "--enableDeferredLoading=true",
        "--dumpPayload=false",
        "--excludeBootstrapResources=false",
        "--forceFailurePolicyIgnore=false",
        "--generateValidatingAdmissionPolicy=true",
        "--generateMutatingAdmissionPolicy=false",
        "--dumpPatches=false",
        "--maxAPICallResponseLength=2000000",
        "--apiCallTimeout=30s",
        "--maxGlobalContextEntries=0",
        "--loggingFormat=text",
        "--v=2",
        "--omitEvents=PolicyApplied,PolicySkipped",
        "--enablePolicyException=false",
        "--protectManagedResources=false",
        "--allowInsecureRegistry=false",
        "--registryCredentialHelpers=default,google,amazon,azure,github",
        "--enableReporting=validate,mutate,mutateExisting,imageVerify,generate",
        "--enableTuf=false",
    ]


@dataclass
class Kyverno:
    """The running admission controller: its process, ports and log."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(plane: Any, work_dir: Path) -> Kyverno:
    """Kyverno's CRDs and configuration applied, then its admission controller as a local process."""
    binary = ensure_built()
    crds = sorted((cache_dir() / "crds").rglob("*.yaml"))
    files = [f"--filename={c}" for c in crds]
    plane.kubectl.run("apply", "--server-side", "--force-conflicts", *files)
    # Its policies are applied next: their kinds must be served by then.
    plane.kubectl.run("wait", "--for=condition=Established", "--timeout=180s", *files)
    plane.kubectl.apply(config_documents())
    port = free_port()
    env = {
        **default_environment(),
        "KYVERNO_NAMESPACE": NAMESPACE,
        "KYVERNO_SERVICEACCOUNT_NAME": ADMISSION_CONTROLLER,
        "KYVERNO_ROLE_NAME": "kyverno:admission-controller",
        "KYVERNO_DEPLOYMENT": ADMISSION_CONTROLLER,
        "KYVERNO_POD_NAME": f"{ADMISSION_CONTROLLER}-local",
        "KYVERNO_SVC": "kyverno-svc",
        "INIT_CONFIG": "kyverno",
        "METRICS_CONFIG": "kyverno-metrics",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    argv = [
        str(binary),
        *chart_flags(),
        f"--kubeconfig={plane.kubeconfig}",
        f"--serverIP={HOST}:{port}",
        f"--webhookServerHost={HOST}",
        f"--webhookServerPort={port}",
        f"--metricsHost={HOST}",
        f"--metricsPort={free_port()}",
        f"--controllerRuntimeMetricsAddress={HOST}:{free_port()}",
        "--autoMemLimitEnabled=false",
    ]
    log_path = work_dir / "kyverno.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=work_dir)
    return Kyverno(process, port, log_path)


def _pod_rule(namespace: str, mutate: dict[str, Any]) -> dict[str, Any]:
    pods = {
        "kinds": ["Pod"],
        "namespaces": [namespace],
        "operations": ["CREATE"],
        "selector": {"matchExpressions": [{"key": "notebook-name", "operator": "Exists"}]},
    }
    return {"name": "workload-label", "match": {"any": [{"resources": pods}]}, "mutate": mutate}


def policies(label: str, namespaces: dict[str, str]) -> list[dict[str, Any]]:
    """What a user would write for our notebook mutation (the workload label on notebook Pods), one policy
    per kind of Kyverno mutation, each limited to its side's namespace (``namespaces``: kind to
    namespace): ``strategic-merge`` and ``json6902`` ClusterPolicies and a CEL ``MutatingPolicy``."""
    pointer = "/metadata/labels/" + label.replace("~", "~0").replace("/", "~1")
    json6902 = f'- op: add\n  path: "{pointer}"\n  value: "true"\n'
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "kfext-bench-strategic-merge"},
            "spec": {
                "rules": [
                    _pod_rule(
                        namespaces["strategic-merge"],
                        {"patchStrategicMerge": {"metadata": {"labels": {label: "true"}}}},
                    )
                ]
            },
        },
        {
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "kfext-bench-json6902"},
            "spec": {"rules": [_pod_rule(namespaces["json6902"], {"patchesJson6902": json6902})]},
        },
        {
            "apiVersion": "policies.kyverno.io/v1",
            "kind": "MutatingPolicy",
            "metadata": {"name": "kfext-bench-cel"},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespaces["cel"]}},
                    "objectSelector": {"matchExpressions": [{"key": "notebook-name", "operator": "Exists"}]},
                },
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {
                            "expression": "Object{metadata: Object.metadata{labels: {"
                            + f'"{label}": "true"'
                            + "}}}"
                        },
                    }
                ],
            },
        },
    ]
    return documents


def trial_job_policy(namespace: str, workload_label: str, service_account: str) -> dict[str, Any]:
    """Our trial Job change as a CEL ``MutatingPolicy``: a Job whose controller is a Katib Trial gets
    Istio's inject label and annotation, the workload label and the profile's service account in its
    Pod template (``serviceAccount`` too when the deprecated field is set, as the API server requires)."""
    trial_owner = (
        "object.metadata.?ownerReferences.orValue([]).exists(o, o.kind == 'Trial'"
        " && o.apiVersion in ['kubeflow.org/v1beta1', 'kubeflow.org/v1alpha3']"
        " && o.?controller.orValue(false))"
    )
    template = (
        "Object{spec: Object.spec{template: Object.spec.template{"
        "metadata: Object.spec.template.metadata{"
        f'labels: {{"{ISTIO_INJECT}": "true", "{workload_label}": "true"}}, '
        f'annotations: {{"{ISTIO_INJECT}": "true"}}}}, '
        f'spec: Object.spec.template.spec{{serviceAccountName: "{service_account}"}}}}}}}}'
    )
    deprecated_account = (
        "has(object.spec.template.spec.serviceAccount) ? [JSONPatch{op: 'replace', "
        f"path: '/spec/template/spec/serviceAccount', value: '{service_account}'}}] : []"
    )
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "MutatingPolicy",
        "metadata": {"name": "kfext-bench-trial-job"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["batch"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["jobs"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            },
            "matchConditions": [{"name": "trial-job", "expression": trial_owner}],
            "mutations": [
                {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": template}},
                {"patchType": "JSONPatch", "jsonPatch": {"expression": deprecated_account}},
            ],
        },
    }
