"""Session fixtures for the end-to-end suite: one local control plane for the whole run.

Nothing is skipped: if the control plane's binaries are missing, every test that needs it fails with the
command that builds them. Set ``E2E_KEEP_RUN_DIR=1`` to keep the run directory (PKI, kubeconfig, logs).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pluggy
import pytest

from e2e.cluster.controlplane import (
    ControlPlane,
    Kubectl,
    LocalService,
    MissingBinariesError,
    require_binaries,
)
from e2e.cluster.node import Node, NodeSetupError
from e2e.framework import versions
from e2e.peers.katib_node import Katib, running_katib

# The image's tests need a built image: `just image-test` builds one and names it in this variable.
collect_ignore = [] if os.environ.get("KUBEFLOW_EXTENSION_IMAGE") else ["image"]

_planes: list[ControlPlane] = []
_nodes: list[Node] = []
_timings: dict[str, float] = {}
"""The start timings of the test run's control plane, for the summary."""
_node_timings: dict[str, float] = {}


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and Metacontroller, ready, with every CRD installed."""
    keep = _keep_run_dirs()
    try:
        require_binaries(versions.load())
    except MissingBinariesError as error:
        message = str(error)
    else:
        message = ""
    if message:
        pytest.fail(message, pytrace=False)
    with ControlPlane(keep_run_dir=keep) as plane:
        _planes.append(plane)
        _timings.update(plane.timings)
        yield plane
        _planes.remove(plane)


def _keep_run_dirs() -> bool:
    return os.environ.get("E2E_KEEP_RUN_DIR", "") not in ("", "0")


@pytest.fixture(scope="session")
def node(control_plane: ControlPlane) -> Iterator[Node]:
    """containerd, a kubelet and kube-scheduler joined to the control plane; the node Ready. Pods for it:
    ``e2e.cluster.node.pod()``."""
    try:
        local = Node(control_plane, keep_run_dir=_keep_run_dirs())
    except NodeSetupError as error:
        pytest.fail(str(error), pytrace=False)
    with local:
        _nodes.append(local)
        _node_timings.update(local.timings)
        yield local
        _nodes.remove(local)


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    """``kubectl(*args)`` returns parsed JSON; ``.run()``, ``.get()``, ``.apply()`` for the rest."""
    return control_plane.kubectl


@pytest.fixture(scope="session")
def hooks_server(control_plane: ControlPlane) -> LocalService:
    """``uvicorn hooks.app:app`` on http://127.0.0.1:<port>, healthy."""
    return control_plane.start_hooks()


@pytest.fixture(scope="session")
def webhook_server(control_plane: ControlPlane) -> LocalService:
    """``uvicorn webhook.app:app`` on https://127.0.0.1:<port> with a cert from the run's CA, healthy."""
    return control_plane.start_webhook()


@pytest.fixture(scope="session")
def katib(
    control_plane: ControlPlane, kubectl: Kubectl, node: Node, webhook_server: LocalService
) -> Iterator[Katib]:
    """Katib v0.19.0 for trials on the node (``e2e.peers.katib_node``): its Pod injector and database, our
    webhook, a namespace where both apply (``PROFILE``) and one where only Katib's does (``UNPATCHED``)."""
    with running_katib(control_plane, kubectl, node, webhook_server) as parts:
        yield parts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """On a failing test, attach the end of every control plane and service log to its report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _planes:
        report.sections.append(("control plane logs", _planes[-1].log_tails(30)))
    if report.failed and _nodes:
        report.sections.append(("node logs", _nodes[-1].log_tails(30)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how long the control plane (and the node) took to start, so CI logs show it."""
    for what, timings in (("local control plane", _timings), ("local node", _node_timings)):
        if timings:
            parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
            terminalreporter.write_line(f"{what} ready in {timings.get('start', 0):.1f} s ({parts})")
