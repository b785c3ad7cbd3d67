"""Katib's metrics collector on trial Pods: wait only for the main process, then stop a classic Istio proxy.

With a proxy in the Pod, the collector (WaitAll defaults to true from Katib 0.10) waits for pilot-agent
forever, and a classic sidecar keeps the Pod running after the collector is done. ``-w=false`` fixes the
first (the ``=`` form is the only one Katib 0.10's boolean flag accepts). For the second, the collector is
run by a small ``sh -c`` script that keeps the collector's own arguments in ``args`` (passed on as
``"$@"``, so they arrive byte for byte), stops the proxy after the collector has reported, and exits
with the collector's exit code. A native sidecar (init container with ``restartPolicy: Always``) is
stopped by the kubelet, so the collector is left unwrapped there.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from service.config import Config
from webhook.mutations import ISTIO_INJECT
from webhook.patch import Mutation, Op, lookup, merge, pointer

COLLECTOR_CONTAINERS = ("metrics-logger-and-collector", "metrics-collector")
"""StdOut/File collectors, and TensorFlowEvent/Prometheus/Custom ones."""
FILE_COLLECTOR_CONTAINER = COLLECTOR_CONTAINERS[0]
"""Always Katib's own file collector, whatever registry its image comes from."""
PROXY_CONTAINER = "istio-proxy"
QUIT_URL = "http://127.0.0.1:15020/quitquitquit"
"""pilot-agent's status port (Istio >= 1.3): localhost-only POST that drains and stops Envoy too."""
MARKER = "# kubeflow-extension: Katib metrics collector, then stop the Istio proxy"
"""First line of the wrapper script: recognises a collector wrapped earlier."""
WAIT_FLAG = "-w=false"
_GO_BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})


def classic_proxy(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod runs (or will get) an Istio proxy that nothing stops when the collector ends.

    Istio's injector sorts before this webhook, so its container is usually there already; the
    injection label (preferred by istiod >= 1.12) or annotation covers a reinvocation before it.
    """
    if any(_is_proxy(c) and c.get("restartPolicy") == "Always" for c in _list(pod, "initContainers")):
        return False
    if any(_is_proxy(c) for c in _list(pod, "containers")):
        return True
    label = lookup(pod, ("metadata", "labels", ISTIO_INJECT))
    decision = label if label is not None else lookup(pod, ("metadata", "annotations", ISTIO_INJECT))
    return bool(decision == "true")


def _list(pod: Mapping[str, Any], field: str) -> list[Any]:
    value = lookup(pod, ("spec", field))
    return value if isinstance(value, list) else []


def _is_proxy(container: Any) -> bool:
    return isinstance(container, Mapping) and container.get("name") == PROXY_CONTAINER


def image_name(image: str) -> str:
    """``ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0@sha256:…`` -> ``file-metrics-collector``."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def wait_only_for_main(args: Sequence[str]) -> list[str]:
    """The arguments with every ``-w`` form replaced by one ``-w=false``, where the first one was.

    Walks them as Go's flag package (and argparse) would: every other flag takes a value, parsing stops
    at ``--`` or the first non-flag, and a bare ``-w`` takes the next word only if it is a Go boolean.
    """
    kept: list[str] = []
    at: int | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-", "--") or not arg.startswith("-"):
            kept.extend(args[i:])
            break
        name, has_value, _ = arg[2 if arg.startswith("--") else 1 :].partition("=")
        takes_next = not has_value and i + 1 < len(args)
        if name == "w":
            at = len(kept) if at is None else at
            i += 2 if takes_next and args[i + 1] in _GO_BOOLS else 1
            continue
        kept.extend(args[i : i + 2] if takes_next else (arg,))
        i += 2 if takes_next else 1
    kept.insert(0 if at is None else at, WAIT_FLAG)
    return kept


def stop_script(entrypoint: Sequence[str], sidecar_stop: str) -> str:
    """The shell program (as the shell must see it) that runs the collector and then stops the proxy.

    BusyBox ``wget`` is what Katib's alpine-based file collector has; ``python3`` what the tfevent one
    has; a signal to pilot-agent (or envoy) through the shared process namespace is the fallback.
    """
    quit_call = (
        # The collector has run: its environment's proxy settings are no longer needed by anyone.
        "  unset http_proxy HTTP_PROXY\n"
        f"  wget -q -T 5 -O /dev/null --post-data= {QUIT_URL} 2>/dev/null && return 0\n"
        "  python3 -c 'import urllib.request as r; "
        f'r.urlopen(r.Request("{QUIT_URL}", data=b"", method="POST"), timeout=5)\' 2>/dev/null && return 0\n'
        if sidecar_stop == "quitquitquit"
        else ""
    )
    return (
        f"{MARKER}\n"
        "stop_proxy() {\n"
        f"{quit_call}"
        "  pkill -TERM pilot-agent 2>/dev/null || pkill -TERM envoy 2>/dev/null\n"
        "}\n"
        f'{shlex.join(entrypoint)} "$@"\n'
        "rc=$?\n"
        "stop_proxy\n"
        "exit $rc\n"
    )


def kubelet_escape(text: str) -> str:
    """Protect text from the kubelet's ``$(VAR)`` expansion in command/args: it turns ``$$`` into ``$``."""
    return text.replace("$", "$$")


def wrapper_command(entrypoint: Sequence[str], sidecar_stop: str, name: str) -> list[str]:
    """``command`` for the wrapped collector; its ``args`` stay as they are and become ``"$@"``."""
    return ["sh", "-c", kubelet_escape(stop_script(entrypoint, sidecar_stop)), name]


def is_wrapper(command: Any) -> bool:
    return (
        isinstance(command, list)
        and len(command) == 4
        and command[:2] == ["sh", "-c"]
        and isinstance(command[2], str)
        and command[2].startswith(MARKER)
    )


def _container(pod: Mapping[str, Any], index: int, container: Mapping[str, Any], config: Config) -> Mutation:
    name = container["name"]
    path = ("spec", "containers", index)
    args = container.get("args") or []
    image = container.get("image")
    entrypoint = config.collector_entrypoints.get(image_name(image)) if isinstance(image, str) else None
    if name != FILE_COLLECTOR_CONTAINER and entrypoint is None:
        # A Custom collector: its flags are unknown, so neither -w nor a wrapper can be assumed safe.
        return Mutation(
            warnings=(f"container {name}: image {image!r} is not a known Katib collector; unchanged",)
        )
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return Mutation(warnings=(f"container {name}: args are not a list of strings; unchanged",))
    wanted: dict[str, Any] = {}
    new_args = wait_only_for_main(args)
    if new_args != args:
        wanted["args"] = new_args
    warnings: list[str] = []
    ops: list[Op] = []
    command = container.get("command")
    ours = is_wrapper(command)
    if classic_proxy(pod):
        if command is not None and not ours:
            warnings.append(f"container {name} has its own command; the Istio proxy is not stopped after it")
        elif entrypoint is None:
            warnings.append(
                f"container {name}: no entrypoint configured for image {image_name(str(image))!r} "
                "(collector_entrypoints); the Istio proxy is not stopped after it"
            )
        else:
            wanted["command"] = wrapper_command(entrypoint, config.sidecar_stop, name)
    elif ours:
        ops.append({"op": "remove", "path": pointer((*path, "command"))})
    ops[:0] = merge(pod, path, wanted)
    return Mutation(tuple(ops), tuple(warnings))


def mutate(pod: Mapping[str, Any], config: Config) -> Mutation:
    ops: list[Op] = []
    warnings: list[str] = []
    for index, container in enumerate(_list(pod, "containers")):
        if isinstance(container, Mapping) and container.get("name") in COLLECTOR_CONTAINERS:
            result = _container(pod, index, container, config)
            ops.extend(result.ops)
            warnings.extend(result.warnings)
    return Mutation(tuple(ops), tuple(warnings))
