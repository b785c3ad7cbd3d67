"""The shipped manifests render, and declare what the code expects of them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, AttachmentType, supported_types

ROOT = Path(__file__).resolve().parents[1]


def render(path: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)], check=True, capture_output=True, text=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [("metacontroller", CURRENT_ISTIO), ("metacontroller/legacy-istio", LEGACY_ISTIO)],
)
def test_decorator_controller_declares_the_types_the_cli_previews(
    overlay: str, expected: tuple[AttachmentType, ...]
) -> None:
    (controller,) = [d for d in render(overlay) if d["kind"] == "DecoratorController"]
    rules = controller["spec"]["attachments"]
    assert supported_types([(r["apiVersion"], r["resource"]) for r in rules]) == tuple(
        sorted(expected, key=lambda t: (t.kind != "EnvoyFilter", t.kind, t.api_version))
    )
    assert all(r["updateStrategy"]["method"] == "InPlace" for r in rules)
    assert controller["spec"]["resources"][0]["resource"] == "namespaces"
    hooks = controller["spec"]["hooks"]
    assert (
        hooks["sync"]["webhook"]["path"] == "/sync" and hooks["customize"]["webhook"]["path"] == "/customize"
    )


def test_istio_1_6_to_1_14_overlay_keeps_authorization_policies_with_the_old_header_form() -> None:
    from hooks.desired import HEADER_FORM_ANNOTATION

    (controller,) = [d for d in render("metacontroller/istio-1.6-1.14") if d["kind"] == "DecoratorController"]
    rules = controller["spec"]["attachments"]
    assert supported_types([(r["apiVersion"], r["resource"]) for r in rules]) == supported_types(
        [
            (t.api_version, r)
            for t, r in zip(CURRENT_ISTIO, ("envoyfilters", "authorizationpolicies"), strict=True)
        ]
    )
    assert controller["metadata"]["annotations"][HEADER_FORM_ANNOTATION] == "append"


def test_hooks_deployment_is_hardened() -> None:
    objects = render("metacontroller")
    (deployment,) = [d for d in objects if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["readinessProbe"] and container["livenessProbe"]
    service = next(d for d in objects if d["kind"] == "Service")
    controller = next(d for d in objects if d["kind"] == "DecoratorController")
    target = controller["spec"]["hooks"]["sync"]["webhook"]["service"]
    assert (target["name"], target["namespace"]) == (
        service["metadata"]["name"],
        service["metadata"]["namespace"],
    )
    assert target["port"] == service["spec"]["ports"][0]["port"]


def test_readme_documents_every_setting() -> None:
    import dataclasses

    from service.config import Config

    readme = (ROOT / "README.md").read_text()
    missing = [f.name for f in dataclasses.fields(Config) if f"| `{f.name}` |" not in readme]
    assert missing == []


IMAGE = "ghcr.io/kubeflow-extension/kubeflow-extension"
IMAGE_KUSTOMIZATIONS = ("metacontroller/base", "webhook/manifests")
EVERY_OVERLAY = (
    "metacontroller",
    "metacontroller/istio-1.6-1.14",
    "metacontroller/legacy-istio",
    "webhook/manifests",
    "webhook/self-managed-certificates",
)


def container_images(root: Path, overlay: str) -> set[str]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(root / overlay)], check=True, capture_output=True, text=True
    )
    return {
        c["image"]
        for d in yaml.safe_load_all(out.stdout)
        if d and d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_every_overlay_runs_the_released_version() -> None:
    """The tag the release workflow pushes (the project's version) is the one every overlay names."""
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for overlay in EVERY_OVERLAY:
        assert container_images(ROOT, overlay) == {f"{IMAGE}:{version}"}, overlay


def test_two_image_entries_retarget_every_overlay(tmp_path: Path) -> None:
    """What `kustomize edit set image` writes into the two kustomizations reaches every Deployment of
    every overlay: the README's one command retargets the whole install."""
    import shutil

    for part in ("metacontroller", "webhook"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for directory in IMAGE_KUSTOMIZATIONS:
        path = tmp_path / directory / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        assert [i["name"] for i in kustomization["images"]] == [IMAGE], directory
        kustomization["images"] = [
            {"name": IMAGE, "newName": "registry.example/team/kfext", "newTag": "1.2.3"}
        ]
        path.write_text(yaml.safe_dump(kustomization))
    for overlay in EVERY_OVERLAY:
        assert container_images(tmp_path, overlay) == {"registry.example/team/kfext:1.2.3"}, overlay


def test_release_pushes_the_image_the_manifests_name() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yaml").read_text())
    assert workflow["env"]["IMAGE"] == IMAGE


def test_release_pushes_only_after_lint_the_tests_and_the_image_tests_pass() -> None:
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yaml").read_text())["jobs"]
    pushing = [name for name, job in jobs.items() if any(s.get("with", {}).get("push") for s in job["steps"])]
    assert pushing, "the release pushes an image"
    for name in pushing:
        needs = jobs[name].get("needs", [])
        ran = " ".join(
            step.get("run", "")
            for need in ([needs] if isinstance(needs, str) else needs)
            for step in jobs[need]["steps"]
        )
        for command in ("just lint", "just test-unit", "pytest e2e/image"):
            assert command in ran, f"{name} pushes without {command!r} having passed"


def _serve_setting(args: list[str], flag: str, default: float) -> float:
    return float(args[args.index(flag) + 1]) if flag in args else default


@pytest.mark.parametrize(
    ("overlay", "name"),
    [
        ("webhook/manifests", "kubeflow-extension-webhook"),
        ("webhook/self-managed-certificates", "kubeflow-extension-webhook"),
        ("metacontroller", "kubeflow-extension-hooks"),
    ],
)
def test_deployments_give_the_drain_time_to_finish_and_roll_without_losing_a_replica(
    overlay: str, name: str
) -> None:
    """The grace period covers the drain (serving on while routes update) plus the requests in flight,
    or the kubelet kills a Pod still answering; a rollout never stops a Pod before its successor is ready."""
    from service.serve import GRACEFUL_TIMEOUT_SECONDS, SHUTDOWN_DELAY_SECONDS

    (deployment,) = [
        d for d in render(overlay) if d["kind"] == "Deployment" and d["metadata"]["name"] == name
    ]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    delay = _serve_setting(args, "--shutdown-delay", SHUTDOWN_DELAY_SECONDS)
    graceful = _serve_setting(args, "--graceful-timeout", GRACEFUL_TIMEOUT_SECONDS)
    assert delay >= 5, "shorter than endpoints take to stop routing to a terminating Pod"
    assert pod.get("terminationGracePeriodSeconds", 30) > delay + graceful
    assert "preStop" not in container.get("lifecycle", {}), "the server drains itself; a preStop adds to it"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("install", ["webhook/manifests", "webhook/self-managed-certificates"])
def test_the_autoscaling_component_scales_the_webhook_and_owns_its_replica_count(
    tmp_path: Path, install: str
) -> None:
    """Added to either install as a user adds it: its HPA targets the webhook's Deployment, never goes
    below the disruption budget's floor plus one, and the Deployment no longer sets a replica count that
    every re-apply would reset."""
    user = tmp_path / "kustomization.yaml"
    user.write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(ROOT / install, tmp_path)],
                "components": [os.path.relpath(ROOT / "webhook" / "autoscaling", tmp_path)],
            }
        )
    )
    objects = {(d["kind"], d["metadata"]["name"]): d for d in render(str(tmp_path))}
    autoscaler = objects[("HorizontalPodAutoscaler", "kubeflow-extension-webhook")]
    deployment = objects[("Deployment", "kubeflow-extension-webhook")]
    budget = objects[("PodDisruptionBudget", "kubeflow-extension-webhook")]
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert autoscaler["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert "replicas" not in deployment["spec"]
    assert autoscaler["spec"]["minReplicas"] > budget["spec"]["minAvailable"]
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def granted(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("overlay", ["metacontroller", "metacontroller/legacy-istio"])
def test_metacontrollers_role_covers_the_parent_it_labels_and_every_attachment(overlay: str) -> None:
    """Metacontroller updates the parent Namespace when the sync answer sets its labels or annotations
    (v1.5.20 pkg/controller/decorator/controller.go), and manages each attachment."""
    documents = render(overlay)
    (controller,) = [d for d in documents if d["kind"] == "DecoratorController"]
    (role,) = [
        d
        for d in documents
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("metacontroller")
    ]
    (parent,) = controller["spec"]["resources"]
    assert {"get", "list", "watch", "update"} <= granted(role["rules"], "", parent["resource"])
    for attachment in controller["spec"]["attachments"]:
        group = attachment["apiVersion"].rpartition("/")[0]
        assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= granted(
            role["rules"], group, attachment["resource"]
        ), attachment
