"""Kale trial Pods: make the polling of the pipeline run survive ml-pipeline being unreachable for a while.

Kale's trial container runs ``python3 -u -c "<program>"``, whose program imports
``create_and_wait_kfp_run`` and then polls ``kfputils.get_run`` every 30 s with no error handling, so
one dropped connection fails a trial that may have run for hours. Just before that import, a short
program rebinds the module attribute ``get_run`` to a retrying wrapper: every Kale version resolves
``get_run`` through the module at call time (``_wait_kfp_run`` <= 0.6, ``kfputils.get_run`` >= 0.7),
so this covers the wait loop, the metrics fetch and the workflow lookup alike.

Only the trial's own containers are patched, never Katib's collector containers or Istio's proxy
(they run Katib's collector and Istio's agent, whatever their command names): so this mutation reads
nothing the collector mutation writes, and runs without the collector's operations applied first
(webhook/mutate.py).

The inserted text runs under the trial image's Python 3.6 and sits inside a double-quoted ``sh -c``
string and a Kubernetes command/args string, so it contains no ``"``, backquote, ``$`` or backslash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from service.config import Config
from webhook.mutations import COLLECTOR_CONTAINERS, CONTAINERS, PROXY_CONTAINER, spec_list
from webhook.patch import UNCHANGED, Mutation, Op

ENTRY_POINT = "create_and_wait_kfp_run"
MARKER = "# kubeflow-extension: retry kfputils.get_run"
"""First line of the inserted program: recognises a program patched earlier."""
HOOK = re.compile(
    r"from\s+(?P<module>kale\.common\.kfputils|kale\.common\.katibutils|kfputils)\s+"
    r"import\s+create_and_wait_kfp_run\b"
)
SHELL_PROGRAM = re.compile(r'python(?<!\wpython)[\w.]*(?:\s+-[^\s"]+){0,8}?\s+-c\s+"(?P<program>[^"]*)"')
"""``python3 -u -c "…"`` inside one shell string (Kale's command, or Katib's ``sh -c`` args[0]).
The options are bounded so that a hostile string cannot make the search quadratic. ``\bpython``,
written as the literal and then a look back for a word character before it, so that the search skips
from one "python" to the next instead of trying every position (four times faster on Kale's line)."""
FORBIDDEN = frozenset('"`$\\')
NOT_KALES = (*COLLECTOR_CONTAINERS, PROXY_CONTAINER)
"""Containers that never run Kale's program, by name: skipped without reading their command. A tuple:
``in`` compares, where a set would hash, and a malformed name may be a list."""

_RETRY = """{marker}
import sys as _kfx_sys, time as _kfx_time, random as _kfx_random, socket as _kfx_socket
_kfx_network_errors = frozenset((
    'urllib3.exceptions.MaxRetryError', 'urllib3.exceptions.ProtocolError',
    'urllib3.exceptions.TimeoutError', 'urllib3.exceptions.NewConnectionError',
    'requests.exceptions.ConnectionError', 'requests.exceptions.Timeout',
    'http.client.IncompleteRead'))
def _kfx_status(error):
    status = getattr(error, 'status', None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None
def _kfx_transient(error):
    status = _kfx_status(error)
    if status:
        return status >= 500 or status in (408, 429)
    if status == 0 or isinstance(error, (ConnectionError, TimeoutError, _kfx_socket.timeout)):
        return True
    names = set(cls.__module__ + '.' + cls.__name__ for cls in type(error).__mro__)
    return bool(names & _kfx_network_errors)
def _kfx_describe(error):
    status = _kfx_status(error)
    if status:
        reason = str(getattr(error, 'reason', '') or '').strip()
        return ('%s: HTTP %d %s' % (type(error).__name__, status, reason)).strip()
    return ('%s: %s' % (type(error).__name__, error))[:300]
def _kfx_retrying(get_run):
    if getattr(get_run, '_kfx_retrying', False):
        return get_run
    def retrying_get_run(*args, **kwargs):
        deadline = _kfx_time.monotonic() + {budget}
        attempt = 0
        while True:
            try:
                return get_run(*args, **kwargs)
            except Exception as error:
                if not _kfx_transient(error):
                    print('kubeflow-extension: get_run failed (%s), not retried'
                          % _kfx_describe(error), file=_kfx_sys.stderr, flush=True)
                    raise
                attempt += 1
                left = deadline - _kfx_time.monotonic()
                if left <= 0:
                    print('kubeflow-extension: get_run failed %d times in {budget} s, giving up: %s'
                          % (attempt, _kfx_describe(error)), file=_kfx_sys.stderr, flush=True)
                    raise
                pause = min(left, min({max_delay}, 2 ** min(attempt, 16)) * _kfx_random.uniform(0.5, 1))
                print('kubeflow-extension: get_run failed (%s), retry %d in %.1f s'
                      % (_kfx_describe(error), attempt, pause), file=_kfx_sys.stderr, flush=True)
                _kfx_time.sleep(pause)
    retrying_get_run._kfx_retrying = True
    return retrying_get_run
"""
_REBIND = "import {module} as _kfx_module\n_kfx_module.get_run = _kfx_retrying(_kfx_module.get_run)\n"


@cache
def retry_program(hook_module: str, budget_seconds: int, max_delay_seconds: int) -> str:
    """The program inserted before the import of ``create_and_wait_kfp_run`` from ``hook_module``.

    Built once per module and setting (cached): the same text goes into every Kale trial Pod.

    Each ``get_run`` call retries what a recovering ml-pipeline or mesh can cure (no connection, a dropped
    or timed-out one, HTTP 5xx, 408 and 429) for up to the budget, with exponential pauses (2 s, 4 s, …
    capped at the maximum delay) and jitter so that many trials do not hammer ml-pipeline together.
    Anything else (a 404 or 401, a bug) is re-raised at once: retrying it only delays the trial's failure.
    Errors are told apart by class name and by the ``status`` that the kfp and kubernetes clients'
    ``ApiException`` carries, so the program imports nothing the trial image might lack.
    """
    module = "kfputils" if hook_module == "kfputils" else "kale.common.kfputils"
    program = _RETRY.format(marker=MARKER, budget=budget_seconds, max_delay=max_delay_seconds)
    program += _REBIND.format(module=module)
    assert not FORBIDDEN & set(program), "the program must survive shell and kubelet quoting"
    return program


def _insertion(text: str, start: int, end: int, config: Config) -> tuple[int, str] | None:
    """Where in ``text`` the retry program goes, and the program, for the Python program that is
    ``text[start:end]``; None when it has no hook or has the retry already. Searched in place, without
    copying the program out of the shell line first."""
    hook = HOOK.search(text, start, end)
    if hook is None or text.find(MARKER, start, hook.start()) >= 0:
        return None
    program = retry_program(hook["module"], config.kale_retry_seconds, config.kale_retry_max_delay_seconds)
    return hook.start(), program


def _patched(text: str, programs: Iterable[tuple[int, int]], config: Config) -> str | None:
    """``text`` with the retry inserted into each of its Python ``programs`` (spans) that needs it; None
    when none did."""
    pieces: list[str] = []
    done = 0
    for start, end in programs:
        found = _insertion(text, start, end, config)
        if found is not None:
            at, program = found
            pieces += (text[done:at], program)
            done = at
    if not pieces:
        return None
    pieces.append(text[done:])
    return "".join(pieces)


def python_program_index(argv: list[Any]) -> int | None:
    """Where the program of the exec form ``python… [options] -c PROGRAM`` stands in ``argv``, if it does.

    Only the first ``python…`` word counts, and its ``-c`` takes the next word, as python itself reads it.
    """
    for start, word in enumerate(argv):
        # The file name starts with "python": most words do not contain it at all, a cheap first test.
        if isinstance(word, str) and "python" in word and word.startswith("python", word.rfind("/") + 1):
            for position in range(start + 1, len(argv) - 1):
                option = argv[position]
                if not isinstance(option, str) or not option.startswith("-"):
                    return None
                if option == "-c":
                    return position + 1
            return None
    return None


def _patched_word(text: str, is_program: bool, config: Config) -> str | None:
    """A word of argv patched, if it is a python ``-c`` program itself or a shell line that runs one."""
    if is_program:
        return _patched(text, ((0, len(text)),), config)
    return _patched(text, (match.span("program") for match in SHELL_PROGRAM.finditer(text)), config)


def _argv(container: Mapping[str, Any]) -> tuple[list[Any], int]:
    """The container's command and args as one argv, and where the args start in it."""
    command = container.get("command")
    args = container.get("args")
    command = command if isinstance(command, list) else []
    return [*command, *(args if isinstance(args, list) else ())], len(command)


def _names_entry_point(argv: list[Any]) -> bool:
    try:
        # One search of the joined words (the name holds no newline, so no match spans two of them).
        return ENTRY_POINT in "\n".join(argv)
    except TypeError:  # a word that is not a string
        return any(isinstance(w, str) and ENTRY_POINT in w for w in argv)


def runs_kale(container: Mapping[str, Any]) -> bool:
    """Whether a container's command or args name Kale's run-and-wait entry point."""
    return _names_entry_point(_argv(container)[0])


def mutate(pod: Mapping[str, Any], config: Config) -> Mutation:
    ops: list[Op] = []
    for index, container in enumerate(spec_list(pod, "containers")):
        if not isinstance(container, dict) or container.get("name") in NOT_KALES:
            continue
        argv, split = _argv(container)
        if not _names_entry_point(argv):
            continue
        program_index = python_program_index(argv)
        # Every word is patched, not just the first: a reinvocation must find nothing left to do.
        for position, word in enumerate(argv):
            # Every program this patches names the entry point (HOOK needs it): a cheap first test.
            if not isinstance(word, str) or ENTRY_POINT not in word:
                continue
            patched = _patched_word(word, position == program_index, config)
            if patched is not None:
                field, offset = ("command", position) if position < split else ("args", position - split)
                path = f"{CONTAINERS}/{index}/{field}/{offset}"
                ops.append({"op": "replace", "path": path, "value": patched})
    return Mutation(tuple(ops)) if ops else UNCHANGED
