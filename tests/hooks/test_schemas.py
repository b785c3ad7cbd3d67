"""Every object the hooks can return is valid for the Istio CRD it will be stored under.

The schemas are the CRDs in tests/data/crds (their upstream versions are in that folder's README).
Validation is strict: a field the API server would silently prune counts as an error, so a typo in a
field name cannot pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, AttachmentType, desired
from service.config import Config
from tests.hooks.conftest import profile

CRDS = Path(__file__).resolve().parents[1] / "data" / "crds"


def strict(schema: Any) -> Any:
    """The schema with unknown fields forbidden wherever Kubernetes would prune them."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def load_schemas() -> dict[tuple[str, str], Any]:
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for version in crd["spec"]["versions"]:
                api_version = f"{crd['spec']['group']}/{version['name']}"
                schema = strict(version["schema"]["openAPIV3Schema"])
                # apiVersion, kind and metadata are the API server's to check, not the CRD schema's.
                schema["additionalProperties"] = True
                validator = jsonschema.validators.validator_for(schema)
                validator.check_schema(schema)
                schemas[(api_version, crd["spec"]["names"]["kind"])] = validator(schema)
    return schemas


SCHEMAS = load_schemas()
ALL_TYPES = [
    *CURRENT_ISTIO,
    *LEGACY_ISTIO,
    AttachmentType("security.istio.io/v1", "AuthorizationPolicy"),
]


def validate(obj: dict[str, Any]) -> None:
    SCHEMAS[(obj["apiVersion"], obj["kind"])].validate(obj)


def test_schemas_for_every_type_the_hooks_build_are_present() -> None:
    assert {(t.api_version, t.kind) for t in ALL_TYPES} <= set(SCHEMAS)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    (policy,) = desired(
        "alice", profile("alice"), [AttachmentType("security.istio.io/v1", "AuthorizationPolicy")], Config()
    )
    policy["spec"]["rules"][0]["form"] = policy["spec"]["rules"][0].pop("from")
    with pytest.raises(jsonschema.ValidationError):
        validate(policy)


@pytest.mark.parametrize(
    "types", [CURRENT_ISTIO, LEGACY_ISTIO, [AttachmentType("security.istio.io/v1", "AuthorizationPolicy")]]
)
def test_default_configuration_objects_validate(types) -> None:
    attachments = desired("alice", profile("alice"), types, Config())
    assert attachments
    for obj in attachments:
        validate(obj)


@settings(max_examples=100, deadline=None)
@given(
    namespace=st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z"),
    owner=st.emails(),
    prefix=st.sampled_from(["", "accounts.google.com:"]),
    port=st.integers(1, 65535),
)
def test_objects_validate_for_any_namespace_owner_and_setting(namespace, owner, prefix, port) -> None:
    config = Config(userid_prefix=prefix, ml_pipeline_port=port)
    for types in (CURRENT_ISTIO, LEGACY_ISTIO):
        for obj in desired(namespace, profile(namespace, owner=owner), types, config):
            validate(obj)
