"""Regenerate ``pod.json`` and ``job.json`` from a real kube-apiserver's OpenAPI v3 documents.

    python -m tests.fuzz.schemas.fetch

Starts the local control plane (``e2e/controlplane.py``; its binaries must be built), reads
``/openapi/v3/api/v1`` and ``/openapi/v3/apis/batch/v1`` once, and keeps only the Pod (resp. Job)
definition and the component definitions it references, transitively. The Kubernetes version is
recorded in each file's ``x-kubernetes-version``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOTS = {
    "pod.json": ("api/v1", "io.k8s.api.core.v1.Pod"),
    "job.json": ("apis/batch/v1", "io.k8s.api.batch.v1.Job"),
}
REF_PREFIX = "#/components/schemas/"


def referenced(value: Any) -> set[str]:
    """Every component name a ``$ref`` in ``value`` points at."""
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX) :])
        for item in value.values():
            found |= referenced(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced(item)
    return found


def trim(document: dict[str, Any], root: str, version: str) -> dict[str, Any]:
    """``root`` and the component definitions it needs; descriptions dropped to keep the file small."""
    components = document["components"]["schemas"]
    keep: dict[str, Any] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = _strip(components[name])
        todo.extend(referenced(keep[name]) - keep.keys())
    return {
        "x-kubernetes-version": version,
        "x-root": root,
        "components": {"schemas": dict(sorted(keep.items()))},
    }


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def main() -> None:
    from e2e.controlplane import ControlPlane

    with ControlPlane() as plane:
        version = plane.kubectl.json("version")["serverVersion"]["gitVersion"]
        for filename, (group_path, root) in ROOTS.items():
            raw = plane.kubectl.run("get", "--raw", f"/openapi/v3/{group_path}").stdout
            trimmed = trim(json.loads(raw), root, version)
            (HERE / filename).write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n")
            print(f"{filename}: {root}, {len(trimmed['components']['schemas'])} definitions, {version}")


if __name__ == "__main__":
    main()
