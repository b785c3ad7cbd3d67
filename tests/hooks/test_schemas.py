"""Every object the hooks can return is valid for the Istio CRD it will be stored under, and the Profiles
the tests build are valid for the Profile CRD written here.

The schemas are the CRDs of ``e2e.framework.upstream.api_crds()``: Istio's from the istio.io/api module in the
Go module cache (versions in e2e/versions.env), the Profile and ServiceRoleBinding from tests/data/crds.
Validation is strict: a field the API server would silently prune counts as an error, so a typo in a
field name cannot pass.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2e.framework import upstream
from hooks.desired import CURRENT_ISTIO, LEGACY_ISTIO, AttachmentType, desired
from service.config import Config
from tests.hooks.conftest import profile


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


@functools.cache
def schemas() -> dict[tuple[str, str], Any]:
    """A validator per (apiVersion, kind); fails naming the bootstrap if the module cache lacks a CRD."""
    validators = {}
    for crd in upstream.api_crds():
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schema = strict(version["schema"]["openAPIV3Schema"])
            # apiVersion, kind and metadata are the API server's to check, not the CRD schema's.
            schema["additionalProperties"] = True
            validator = jsonschema.validators.validator_for(schema)
            validator.check_schema(schema)
            validators[(api_version, crd["spec"]["names"]["kind"])] = validator(schema)
    return validators


ALL_TYPES = [
    *CURRENT_ISTIO,
    *LEGACY_ISTIO,
    AttachmentType("security.istio.io/v1", "AuthorizationPolicy"),
]


def validate(obj: dict[str, Any]) -> None:
    schemas()[(obj["apiVersion"], obj["kind"])].validate(obj)


def test_schemas_for_every_type_the_hooks_build_are_present() -> None:
    assert {(t.api_version, t.kind) for t in ALL_TYPES} <= set(schemas())


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_the_tests_profiles_validate_and_a_profile_without_owner_name_does_not(version: str) -> None:
    valid = profile("alice") | {"apiVersion": f"kubeflow.org/{version}"}
    validate(valid | {"spec": valid["spec"] | {"plugins": [{"kind": "WorkloadIdentity", "spec": {}}]}})
    validate(valid | {"spec": {}})
    for owner in ({"kind": "User"}, {"kind": "User", "name": 7}, {"kind": "User", "name": "a", "nmae": "b"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(valid | {"spec": {"owner": owner}})


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
def test_default_configuration_objects_validate(types: Sequence[AttachmentType]) -> None:
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
def test_objects_validate_for_any_namespace_owner_and_setting(
    namespace: str, owner: str, prefix: str, port: int
) -> None:
    config = Config(userid_prefix=prefix, ml_pipeline_port=port)
    for types in (CURRENT_ISTIO, LEGACY_ISTIO):
        for obj in desired(namespace, profile(namespace, owner=owner), types, config):
            validate(obj)
