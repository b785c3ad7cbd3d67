"""The shipped manifests render, and declare what the code expects of them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, supported_types

ROOT = Path(__file__).resolve().parents[1]


def render(path: str) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)], check=True, capture_output=True, text=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [("metacontroller", CURRENT_ISTIO), ("metacontroller/legacy-istio", LEGACY_ISTIO)],
)
def test_decorator_controller_declares_the_types_the_cli_previews(overlay: str, expected: tuple) -> None:
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
