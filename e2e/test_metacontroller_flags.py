"""The local control plane passes each Metacontroller the flags it understands, read from its --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.cluster.metacontroller import (
    Endpoints,
    UnsupportedMetacontrollerError,
    advertised_flags,
    arguments,
    read_help,
)
from e2e.framework import versions

# Metacontroller v4.17.2's flags: the 17 of pkg/cmd/metacontroller/main.go@v4.17.2 (lines 45-61), the
# --zap-* options that main() binds from controller-runtime v0.24.1 (pkg/log/zap/zap.go@v0.24.1, BindFlags),
# and --kubeconfig, which controller-runtime's pkg/client/config registers in its init()
# (config.go@v0.24.1). No v4 can be built from the Go module proxy here, so its help output is not at hand.
V4_FLAGS = frozenset(
    {
        "discovery-interval",
        "cache-flush-interval",
        "metrics-address",
        "client-go-qps",
        "client-go-burst",
        "workers",
        "events-qps",
        "events-burst",
        "pprof-address",
        "leader-election",
        "leader-election-resource-lock",
        "leader-election-namespace",
        "leader-election-id",
        "health-probe-bind-address",
        "target-label-selector",
        "apply-strategy",
        "apply-strategy-ssa-field-manager",
        "kubeconfig",
        "zap-devel",
        "zap-encoder",
        "zap-log-level",
        "zap-stacktrace-level",
        "zap-time-encoding",
    }
)
KUBECONFIG = Path("/run/cp/admin.kubeconfig")
ENDPOINTS = Endpoints(metrics_port=40001, health_port=40002)


@pytest.fixture(scope="module")
def built_help() -> str:
    """The --help of the Metacontroller the harness builds (1.5.20), run for real."""
    binary = versions.load().metacontroller_dir / "bin" / "metacontroller"
    if not binary.is_file():
        pytest.fail(f"{binary} is not built: run {versions.BUILD_SCRIPT} metacontroller", pytrace=False)
    return read_help(binary)


def test_the_built_metacontrollers_help_lists_its_flags(built_help: str) -> None:
    flags = advertised_flags(built_help)
    assert {"client-config-path", "debug-addr", "v", "discovery-interval", "client-go-qps"} <= flags
    assert "metrics-address" not in flags
    assert "health-probe-bind-address" not in flags
    # Usage text is not mistaken for flags.
    assert all(not name[0].isupper() for name in flags), sorted(flags)


def test_metacontroller_1_5_gets_its_kubeconfig_metrics_and_verbosity_flags(built_help: str) -> None:
    flags = advertised_flags(built_help)
    # 1.5 lists --kubeconfig too, but reads the kubeconfig only from --client-config-path.
    assert "kubeconfig" in flags
    argv = arguments(flags, KUBECONFIG, ENDPOINTS)
    assert f"--client-config-path={KUBECONFIG}" in argv
    assert "--debug-addr=127.0.0.1:40001" in argv
    assert "--v=4" in argv
    assert not any(
        a.startswith(("--kubeconfig", "--metrics-address", "--health-probe", "--zap")) for a in argv
    )


def test_metacontroller_v4_gets_kubeconfig_metrics_health_and_zap_flags() -> None:
    argv = arguments(V4_FLAGS, KUBECONFIG, ENDPOINTS)
    assert f"--kubeconfig={KUBECONFIG}" in argv
    assert "--metrics-address=127.0.0.1:40001" in argv
    # Its default health address is :8081 on every interface; the harness keeps it on loopback.
    assert "--health-probe-bind-address=127.0.0.1:40002" in argv
    assert "--zap-log-level=4" in argv
    assert not any(a.startswith(("--client-config-path", "--debug-addr", "--v=")) for a in argv)
    assert ENDPOINTS.metrics_url == "http://127.0.0.1:40001/metrics"


def test_go_flag_and_pflag_help_lines_are_both_read() -> None:
    text = (
        "Usage of metacontroller:\n"
        "  -kubeconfig string\n"
        "    \tPaths to a kubeconfig. Only required if out-of-cluster.\n"
        "      --zap-log-level level   Zap Level to configure the verbosity of logging.\n"
        "  -v value\n"
        "    \tnumber for the log level verbosity -not-a-flag\n"
    )
    assert advertised_flags(text) == {"kubeconfig", "zap-log-level", "v"}


def test_a_binary_without_known_flags_is_refused_with_what_it_lists() -> None:
    with pytest.raises(UnsupportedMetacontrollerError, match="it lists: help, version"):
        arguments(frozenset({"help", "version"}), KUBECONFIG, ENDPOINTS)


def test_binary_and_crds_can_be_chosen_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary, crds = tmp_path / "metacontroller-v4", tmp_path / "crds-v4.yaml"
    monkeypatch.setenv(versions.METACONTROLLER_BINARY_ENV, str(binary))
    monkeypatch.setenv(versions.METACONTROLLER_CRDS_ENV, str(crds))
    versions.load.cache_clear()
    try:
        chosen = versions.load()
    finally:
        versions.load.cache_clear()
    assert chosen.metacontroller_binary == binary
    assert chosen.metacontroller_crds_override == crds
    assert f"metacontroller: {binary}" in chosen.missing()
