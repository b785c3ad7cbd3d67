"""Katib's metrics collector on trial Pods: wait only for the main process, then stop a classic Istio proxy.

With a proxy in the Pod, a collector told to wait for all processes waits for pilot-agent forever, and a
classic sidecar keeps the Pod running after the collector is done. The first is fixed by the one
wait-all form the collector's version reads as "false" (``wait_form``: the versions differ, see
webhook/README.md). For the second, the collector is run by a small ``sh -c`` script that keeps the
collector's own arguments in ``args`` (passed on as ``"$@"``, so they arrive byte for byte), stops the
proxy after the collector has reported, and exits with the collector's exit code. A native sidecar
(init container with ``restartPolicy: Always``) is stopped by the kubelet, so the collector is left
unwrapped there.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

from service.config import Config
from webhook.mutations import COLLECTOR_CONTAINERS, CONTAINERS, ISTIO_INJECT, PROXY_CONTAINER, spec_list
from webhook.patch import Mutation, Op, lookup

FILE_COLLECTOR_CONTAINER = COLLECTOR_CONTAINERS[0]
"""Always Katib's own file collector, whatever registry its image comes from."""
QUIT_URL = "http://127.0.0.1:15020/quitquitquit"
"""pilot-agent's status port (Istio >= 1.3): localhost-only POST that drains and stops Envoy too."""
MARKER = "# kubeflow-extension: Katib metrics collector, then stop the Istio proxy"
"""First line of the wrapper script: recognises a collector wrapped earlier."""
WAIT_FLAG = "-w=false"
"""False for Katib's Go collectors (``flag.Bool`` up to 0.10.0, then a string given to strconv.ParseBool)
and for the TFEvent collector from 0.10.1 (a string compared with "true")."""
EMPTY_WAIT_FLAG = "-w="
"""False for every TFEvent collector that declares ``-w``: 0.10.0's ``type=bool`` makes ``bool("")``,
later ones compare "" with "true". ``-w=false`` would be True for 0.10.0."""
TFEVENT_IMAGE = "tfevent-metrics-collector"
FIRST_STRING_WAIT_FLAG = (0, 10, 1)
"""The first Katib release whose TFEvent collector reads ``-w`` as a string."""
_RELEASE_TAG = re.compile(r"v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})")
_GO_BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})


def classic_proxy(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod runs (or will get) an Istio proxy that nothing stops when the collector ends.

    Istio's injector sorts before this webhook, so its container is usually there already; the
    injection label (preferred by istiod >= 1.12) or annotation covers a reinvocation before it.
    """
    for container in spec_list(pod, "initContainers"):
        if _is_proxy(container) and container.get("restartPolicy") == "Always":
            return False
    for container in spec_list(pod, "containers"):
        if _is_proxy(container):
            return True
    label = lookup(pod, ("metadata", "labels", ISTIO_INJECT))
    decision = label if label is not None else lookup(pod, ("metadata", "annotations", ISTIO_INJECT))
    return bool(decision == "true")


def _all_strings(words: list[Any]) -> bool:
    """Whether every item is a string: one join in C, where a generator over the items costs several
    times as much on every review."""
    try:
        "".join(words)
    except TypeError:
        return False
    return True


def _is_proxy(container: Any) -> bool:
    return isinstance(container, dict) and container.get("name") == PROXY_CONTAINER


@lru_cache(maxsize=256)
def _name_and_tag(image: str) -> tuple[str, str]:
    """Cached: a cluster's trial Pods name a handful of collector images, each read twice per Pod."""
    name, _, tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")
    return name, tag


def image_name(image: str) -> str:
    """``ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0@sha256:…`` -> ``file-metrics-collector``."""
    return _name_and_tag(image)[0]


def release(image: str) -> tuple[int, int, int] | None:
    """``…:v0.17.0`` -> (0, 17, 0); None when the tag is missing or no release (``v1beta1-a96ff59``)."""
    tag = _name_and_tag(image)[1]
    match = _RELEASE_TAG.fullmatch(tag.split("-", 1)[0]) if tag else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _has_flag(args: Sequence[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args)


def wait_form(image: str, args: Sequence[str]) -> str | None:
    """The wait-all flag that tells this collector "false", or None where the collector has no such flag.

    The Go file collector reads ``-w=false`` as false in every version. The TFEvent collector of Katib
    0.9 (arguments ``-s`` rather than ``-s-db``; also 0.10.0's v1alpha3 one) declares no ``-w``, so
    argparse would exit 2 on it, and it needs none: it stops waiting when the first other root process
    ends. Katib 0.10.0's declares ``-w`` with ``type=bool``, so only an empty value is false; a release
    tag from 0.10.1 on shows the string flag, where ``-w=false`` is Katib's own spelling.
    """
    if image_name(image) != TFEVENT_IMAGE:
        return WAIT_FLAG
    if _has_flag(args, "-s") and not _has_flag(args, "-s-db"):
        return None
    version = release(image)
    return WAIT_FLAG if version is not None and version >= FIRST_STRING_WAIT_FLAG else EMPTY_WAIT_FLAG


def wait_only_for_main(args: Sequence[str], form: str | None = WAIT_FLAG) -> list[str]:
    """The arguments with every ``-w`` form replaced by ``form`` where the first one was (or first).

    With ``form`` None every ``-w`` form is dropped. Walks them as Go's flag package (and argparse)
    would: every other flag takes a value, parsing stops at ``--`` or the first non-flag, and a bare
    ``-w`` takes the next word only if it is a Go boolean.
    """
    if not _may_name_w(args):
        return list(args) if form is None else [form, *args]
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
    if form is not None:
        kept.insert(0 if at is None else at, form)
    return kept


def _may_name_w(args: Sequence[str]) -> bool:
    """Whether any word starts with ``-w`` or ``--w``: one search of the joined words, since most
    collectors are given no ``-w`` at all and the full walk is then only a copy."""
    joined = "\n" + "\n".join(args)
    return "\n-w" in joined or "\n--w" in joined


BOUND_SECONDS = 10
"""Longest any step of the proxy stop may take before the script moves on."""
_PYTHON_POST = (
    "try:\n"
    "    from urllib.request import Request, urlopen\n"
    "except ImportError:\n"
    "    from urllib2 import Request, urlopen\n"
    f'urlopen(Request("{QUIT_URL}", data=b""), timeout=5)\n'
)
"""A POST in Python 3 or 2 (Katib 0.10.0's TFEvent image runs Python 2.7): a body, even an empty one, makes
urllib send POST."""


def stop_script(entrypoint: Sequence[str], sidecar_stop: str) -> str:
    """The shell program (as the shell must see it) that runs the collector and then stops the proxy.

    It needs only a POSIX ``sh``: ``wget`` (no ``-T``, which some BusyBox builds lack or crash on) or
    Python posts to pilot-agent's status port; without either, or if that fails, the shell signals
    ``pilot-agent`` (else ``envoy``) itself, found by walking ``/proc/*/comm`` in the shared process
    namespace with its builtin ``read`` and ``kill`` (no ``pkill`` needed). Each outside program runs in
    the background and is killed after BOUND_SECONDS.
    """
    quit_call = (
        "post_quit() {\n"
        # The collector has run: its environment's proxy settings are no longer needed by anyone.
        "  unset http_proxy HTTP_PROXY\n"
        f"  within wget -q -O /dev/null --post-data= {QUIT_URL} && return 0\n"
        "  for python in python3 python; do\n"
        f'    within "$python" -c {shlex.quote(_PYTHON_POST)} && return 0\n'
        "  done\n"
        "  return 1\n"
        "}\n"
        if sidecar_stop == "quitquitquit"
        else ""
    )
    return (
        f"{MARKER}\n"
        "within() {\n"
        '  "$@" >/dev/null 2>&1 &\n'
        "  job=$!\n"
        f'  (sleep {BOUND_SECONDS} && kill -9 "$job") >/dev/null 2>&1 &\n'
        "  dog=$!\n"
        '  wait "$job"\n'
        "  step=$?\n"
        '  kill "$dog" 2>/dev/null\n'
        '  return "$step"\n'
        "}\n"
        f"{quit_call}"
        "signal() {\n"
        "  found=1\n"
        "  for dir in /proc/[0-9]*; do\n"
        '    read -r comm 2>/dev/null <"$dir/comm" || continue\n'
        '    if [ "$comm" = "$1" ] && kill -TERM "${dir#/proc/}" 2>/dev/null; then found=0; fi\n'
        "  done\n"
        '  return "$found"\n'
        "}\n"
        "stop_proxy() {\n"
        f"{'  post_quit && return 0' + chr(10) if quit_call else ''}"
        "  signal pilot-agent || signal envoy\n"
        "}\n"
        f'{shlex.join(entrypoint)} "$@"\n'
        "rc=$?\n"
        "stop_proxy\n"
        'exit "$rc"\n'
    )


def kubelet_escape(text: str) -> str:
    """Protect text from the kubelet's ``$(VAR)`` expansion in command/args: it turns ``$$`` into ``$``."""
    return text.replace("$", "$$")


def wrapper_command(entrypoint: Sequence[str], sidecar_stop: str, name: str) -> list[str]:
    """``command`` for the wrapped collector; its ``args`` stay as they are and become ``"$@"``."""
    return ["sh", "-c", _escaped_stop_script(tuple(entrypoint), sidecar_stop), name]


@cache
def _escaped_stop_script(entrypoint: tuple[str, ...], sidecar_stop: str) -> str:
    """Built once per collector image and setting: the same text goes into every trial Pod."""
    return kubelet_escape(stop_script(entrypoint, sidecar_stop))


def is_wrapper(command: Any) -> bool:
    return (
        isinstance(command, list)
        and len(command) == 4
        and command[:2] == ["sh", "-c"]
        and isinstance(command[2], str)
        and command[2].startswith(MARKER)
    )


def _set(container: Mapping[str, Any], path: str, field: str, value: list[str]) -> Op:
    """Set one field of the container at ``path``: the whole list, as it is a leaf to JSON Patch."""
    return {"op": "replace" if field in container else "add", "path": f"{path}/{field}", "value": value}


def _container(pod: Mapping[str, Any], index: int, container: Mapping[str, Any], config: Config) -> Mutation:
    name = container["name"]
    path = f"{CONTAINERS}/{index}"
    given = container.get("args")
    args = given or []
    image = container.get("image")
    entrypoint = config.collector_entrypoints.get(image_name(image)) if isinstance(image, str) else None
    if name != FILE_COLLECTOR_CONTAINER and entrypoint is None:
        # A Custom collector: its flags are unknown, so neither -w nor a wrapper can be assumed safe.
        return Mutation(
            warnings=(f"container {name}: image {image!r} is not a known Katib collector; unchanged",)
        )
    if not isinstance(args, list) or not _all_strings(args):
        return Mutation(warnings=(f"container {name}: args are not a list of strings; unchanged",))
    warnings: list[str] = []
    ops: list[Op] = []
    form = wait_form(image if isinstance(image, str) else "", args)
    if form is not None and isinstance(given, list) and not _may_name_w(args):
        # The usual case, a list without -w: the flag goes in front by one small add rather than the whole
        # list again (null or absent args are set whole below, as an add inside them would fail).
        ops.append({"op": "add", "path": f"{path}/args/0", "value": form})
    else:
        new_args = wait_only_for_main(args, form)
        if new_args != args:
            ops.append(_set(container, path, "args", new_args))
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
            wrapper = wrapper_command(entrypoint, config.sidecar_stop, name)
            if command != wrapper:  # none yet, or one for another setting; the same one stays as it is
                ops.append(_set(container, path, "command", wrapper))
    elif ours:
        ops.append({"op": "remove", "path": f"{path}/command"})
    return Mutation(tuple(ops), tuple(warnings))


def mutate(pod: Mapping[str, Any], config: Config) -> Mutation:
    collectors = [
        _container(pod, index, container, config)
        for index, container in enumerate(spec_list(pod, "containers"))
        if isinstance(container, dict) and container.get("name") in COLLECTOR_CONTAINERS
    ]
    if len(collectors) == 1:  # a trial Pod has one: its mutation is the Pod's
        return collectors[0]
    return Mutation(
        tuple(op for result in collectors for op in result.ops),
        tuple(warning for result in collectors for warning in result.warnings),
    )
