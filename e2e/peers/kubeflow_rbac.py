"""Kubeflow's RBAC for a profile namespace's ``default-editor``, written here as facts, for the token tests.

Facts read from Kubeflow 1.10.0 (kubeflow/manifests tag v1.10.0, which ships Kubeflow Pipelines 2.4.1):
- ``common/kubeflow-roles/base/cluster-roles.yaml``: ClusterRole ``kubeflow-edit`` has no rules of its own;
  it aggregates every ClusterRole labelled ``rbac.authorization.kubeflow.org/aggregate-to-kubeflow-edit``.
- ``apps/pipeline/upstream/base/installs/multi-user/view-edit-cluster-roles.yaml`` (the same file as
  kubeflow/pipelines 2.4.1 and 2.5.0 ``manifests/kustomize/base/installs/multi-user/``): ClusterRole
  ``kubeflow-pipelines-edit``, labelled to aggregate into ``kubeflow-edit``, aggregates the roles labelled
  ``...aggregate-to-kubeflow-pipelines-edit``; one of them, ``aggregate-to-kubeflow-pipelines-edit``, holds
  the verbs on ``pipelines.kubeflow.org`` resources listed below (its rules on ``kubeflow.org``
  scheduledworkflows and ``argoproj.io`` workflows are left out: KFP's API server checks none of them).
  The view roles, which also aggregate into ``kubeflow-edit``, add only ``get``/``list`` and are left out.
- kubeflow/kubeflow v1.10.0 ``components/profile-controller/controllers/profile_controller.go``
  (``updateServiceAccount``): per profile namespace, a RoleBinding named ``default-editor`` with roleRef
  ClusterRole ``kubeflow-edit`` and subject ServiceAccount ``default-editor`` of that namespace.
The ClusterRoles are aggregated by kube-controller-manager's clusterrole-aggregation controller, as in a
real cluster.
"""

from __future__ import annotations

from typing import Any

LABEL_PREFIX = "rbac.authorization.kubeflow.org/"
EDIT = "kubeflow-edit"
PIPELINES_EDIT = "kubeflow-pipelines-edit"
PIPELINES_GROUP = "pipelines.kubeflow.org"

PIPELINES_EDIT_VERBS = {
    ("pipelines", "pipelines/versions"): ("create", "delete", "update"),
    ("experiments",): ("archive", "create", "delete", "unarchive"),
    ("runs",): ("archive", "create", "delete", "retry", "terminate", "unarchive"),
    ("jobs",): ("create", "delete", "disable", "enable"),
}
"""Resources -> verbs of ``aggregate-to-kubeflow-pipelines-edit`` in the pipelines.kubeflow.org group."""


def _aggregating(name: str, selects: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {LABEL_PREFIX + selects: "true"}}]},
        "rules": [],
    }


def cluster_roles() -> list[dict[str, Any]]:
    return [
        _aggregating(
            EDIT, "aggregate-to-kubeflow-edit", {LABEL_PREFIX + "aggregate-to-kubeflow-admin": "true"}
        ),
        _aggregating(
            PIPELINES_EDIT,
            "aggregate-to-kubeflow-pipelines-edit",
            {LABEL_PREFIX + "aggregate-to-kubeflow-edit": "true"},
        ),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "aggregate-to-kubeflow-pipelines-edit",
                "labels": {LABEL_PREFIX + "aggregate-to-kubeflow-pipelines-edit": "true"},
            },
            "rules": [
                {"apiGroups": [PIPELINES_GROUP], "resources": list(resources), "verbs": list(verbs)}
                for resources, verbs in PIPELINES_EDIT_VERBS.items()
            ],
        },
    ]


def default_editor_binding(namespace: str, service_account: str = "default-editor") -> dict[str, Any]:
    """The RoleBinding Kubeflow's profile controller makes for the namespace's service account."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": service_account, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": EDIT},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
