"""Token identity: notebook and trial Pods, and trial Job templates, get a projected ServiceAccount token.

KFP >= 1.7 authenticates ``Authorization: Bearer <token>`` by TokenReview for its audience, then
authorises the token's service account by SubjectAccessReview in the namespace; the KFP SDK sends the
token by itself when ``KF_PIPELINES_SA_TOKEN_PATH`` names the file. So each ordinary container (not the
Istio proxy) gets the token volume mounted read-only and that variable.

What Kubeflow's ``access-ml-pipeline`` PodDefault adds is the same volume under the same name, so an
equivalent mount already there (same volume name, mount path and audience, or another projected volume
of that audience at that path) is kept as it is; anything conflicting is left alone with a warning
rather than producing a duplicate volume name or mount path, which the API server would refuse.
Nothing happens in header mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.config import Config
from webhook.mutations import COLLECTOR_CONTAINERS, PROXY_CONTAINER, kale, notebook, spec_list, trial_job
from webhook.patch import UNCHANGED, Mutation, Op, Token, lookup, pointer


def token_volume(config: Config) -> dict[str, Any]:
    return {
        "name": config.token_volume,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": config.token_file,
                        "expirationSeconds": config.token_expiration_seconds,
                        "audience": config.token_audience,
                    }
                }
            ]
        },
    }


def provides_token(volume: Any, config: Config) -> bool:
    """Whether a volume projects a service account token of our audience to our file name."""
    sources = lookup(volume, ("projected", "sources"))
    return isinstance(sources, list) and any(
        isinstance(source, dict)
        and isinstance(source.get("serviceAccountToken"), dict)
        and source["serviceAccountToken"].get("audience") == config.token_audience
        and source["serviceAccountToken"].get("path") == config.token_file
        for source in sources
    )


def _named(items: Any, name: str) -> Mapping[str, Any] | None:
    if not isinstance(items, list):
        return None
    return next((i for i in items if isinstance(i, dict) and i.get("name") == name), None)


def _append(obj: Mapping[str, Any], path: Sequence[Token], field: str, item: Any) -> Op:
    """Add ``item`` to the list ``field`` at ``path``, creating the list when it is missing (or null)."""
    if isinstance(lookup(obj, (*path, field)), list):
        return {"op": "add", "path": pointer((*path, field, "-")), "value": item}
    return {"op": "add", "path": pointer((*path, field)), "value": [item]}


def _container(
    obj: Mapping[str, Any], path: Sequence[Token], container: Mapping[str, Any], volumes: Any, config: Config
) -> tuple[list[Op], list[str], bool]:
    """Operations for one container, its warnings, and whether it mounts our volume (new or kept)."""
    name = container.get("name")
    mounts = container.get("volumeMounts")
    mounts = mounts if isinstance(mounts, list) else []
    directory = config.token_directory.rstrip("/")
    at_path = next(
        (m for m in mounts if isinstance(m, dict) and str(m.get("mountPath", "")).rstrip("/") == directory),
        None,
    )
    ops: list[Op] = []
    mounts_ours = False
    if at_path is None:
        mount = {"name": config.token_volume, "mountPath": config.token_directory, "readOnly": True}
        ops.append(_append(obj, path, "volumeMounts", mount))
        mounts_ours = True
    elif at_path.get("name") == config.token_volume:
        mounts_ours = True
    elif not provides_token(_named(volumes, str(at_path.get("name"))), config):
        return (
            [],
            [f"container {name}: {directory} is already mounted from another volume; no token mounted"],
            False,
        )
    env = container.get("env")
    current = _named(env, config.token_path_env)
    if current is None:
        ops.append(_append(obj, path, "env", {"name": config.token_path_env, "value": config.token_path}))
    elif current.get("value") != config.token_path or "valueFrom" in current:
        return ops, [f"container {name}: keeps its own {config.token_path_env}"], mounts_ours
    return ops, [], mounts_ours


def ensure_token(obj: Mapping[str, Any], spec_path: Sequence[Token], config: Config) -> Mutation:
    """Operations that give every ordinary container of the pod spec at ``spec_path`` the token."""
    spec = lookup(obj, spec_path)
    containers = lookup(spec, ("containers",))
    if not isinstance(spec, dict) or not isinstance(containers, list):
        return UNCHANGED
    volumes = spec.get("volumes")
    ours = _named(volumes, config.token_volume)
    if ours is not None and not provides_token(ours, config):
        warning = f"volume {config.token_volume} has no {config.token_audience} token; no token mounted"
        return Mutation(warnings=(warning,))
    ops: list[Op] = []
    warnings: list[str] = []
    needs_volume = False
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or container.get("name") == PROXY_CONTAINER:
            continue
        container_ops, container_warnings, mounts_ours = _container(
            obj, (*spec_path, "containers", index), container, volumes, config
        )
        ops.extend(container_ops)
        warnings.extend(container_warnings)
        needs_volume = needs_volume or mounts_ours
    if needs_volume and ours is None:
        ops.insert(0, _append(obj, spec_path, "volumes", token_volume(config)))
    return Mutation(tuple(ops), tuple(warnings))


def is_trial_pod(pod: Mapping[str, Any]) -> bool:
    """A Katib trial Pod: Katib's metrics collector or Kale's run-and-wait program is in it (the trial Pod
    webhook's matchConditions)."""
    return any(
        isinstance(c, dict) and (c.get("name") in COLLECTOR_CONTAINERS or kale.runs_kale(c))
        for c in spec_list(pod, "containers")
    )


def mutate_pod(pod: Mapping[str, Any], config: Config) -> Mutation:
    if config.identity_mode == "header":
        return UNCHANGED
    labels = lookup(pod, ("metadata", "labels"))
    if (isinstance(labels, dict) and notebook.NOTEBOOK_LABEL in labels) or is_trial_pod(pod):
        return ensure_token(pod, ("spec",), config)
    return UNCHANGED


def mutate_job(job: Mapping[str, Any], config: Config) -> Mutation:
    if config.identity_mode == "header" or not trial_job.is_trial_job(job):
        return UNCHANGED
    return ensure_token(job, ("spec", "template", "spec"), config)
