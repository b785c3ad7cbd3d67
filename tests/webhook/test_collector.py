import dataclasses
import http.server
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.config import Config
from tests.webhook.katib_objects import KATIB_VERSIONS, kubelet_expand, trial_pod
from webhook.mutations import collector
from webhook.mutations.collector import (
    EMPTY_WAIT_FLAG,
    QUIT_URL,
    WAIT_FLAG,
    classic_proxy,
    image_name,
    is_wrapper,
    kubelet_escape,
    mutate,
    release,
    wait_form,
    wait_only_for_main,
)
from webhook.patch import Mutation

CONFIG = Config()


def collector_of(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"].startswith("metrics-"))


def apply(pod: dict[str, Any], config: Config = CONFIG) -> tuple[dict[str, Any], Mutation]:
    result = mutate(pod, config)
    return jsonpatch.apply_patch(pod, list(result.ops)), result


# --- -w=false ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["-w=false"]),
        (["-t", "x"], ["-w=false", "-t", "x"]),
        (["-t", "x", "-w", "true"], ["-t", "x", "-w=false"]),
        (["-t", "x", "-w", "False", "-p", "1"], ["-t", "x", "-w=false", "-p", "1"]),
        (["-w=true", "-t", "x"], ["-w=false", "-t", "x"]),
        (["--w", "1", "-t", "x"], ["-w=false", "-t", "x"]),
        (["--w=t"], ["-w=false"]),
        (["-t", "x", "-w"], ["-t", "x", "-w=false"]),  # Katib 0.10's boolean flag, bare
        (["-w", "-t", "x"], ["-w=false", "-t", "x"]),  # bare, followed by another flag
        (["-w", "true", "-t", "x", "-w=1"], ["-w=false", "-t", "x"]),
        (["-m", "-w", "-t", "x"], ["-w=false", "-m", "-w", "-t", "x"]),  # "-w" is -m's value here
        (["-t", "x", "--", "-w", "true"], ["-w=false", "-t", "x", "--", "-w", "true"]),
        (["-t", "x", "positional", "-w"], ["-w=false", "-t", "x", "positional", "-w"]),
        (["-wait", "5"], ["-w=false", "-wait", "5"]),
    ],
)
def test_wait_only_for_main(args: list[str], expected: list[str]) -> None:
    assert wait_only_for_main(args) == expected
    assert wait_only_for_main(expected) == expected


@given(
    st.lists(
        st.sampled_from(["-w", "--w", "-w=true", "--w=false", "true", "0", "-t", "x", "--", "-m", "a;b"])
    )
)
def test_wait_only_for_main_is_idempotent(args: list[str]) -> None:
    once = wait_only_for_main(args)
    assert wait_only_for_main(once) == once
    assert once.count("-w=false") >= 1


V09_ARGS = ["-t", "x", "-m", "a", "-s", "katib-db-manager.kubeflow:6789", "-path", "/var/log/katib/tfevent/"]
V10_ARGS = ["-t", "x", "-m", "a", "-o-type", "maximize", "-s-db", "katib-db-manager.kubeflow:6789"]


@pytest.mark.parametrize(
    ("image", "args", "form"),
    [
        ("ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0", V10_ARGS, WAIT_FLAG),
        ("gcr.io/kubeflow-images-public/katib/v1alpha3/file-metrics-collector:917164a", V09_ARGS, WAIT_FLAG),
        ("registry.example.com/mirror/collector:1", V10_ARGS, WAIT_FLAG),
        # Katib 0.9's TFEvent collector has no -w (argparse exits 2 on it).
        ("gcr.io/kubeflow-images-public/katib/v1alpha3/tfevent-metrics-collector", V09_ARGS, None),
        ("gcr.io/kubeflow-images-public/katib/v1beta1/tfevent-metrics-collector:v0.9.0", V09_ARGS, None),
        # 0.10.0's is type=bool: only an empty value is false. Untagged and commit tags may be 0.10.0.
        ("docker.io/kubeflowkatib/tfevent-metrics-collector:v1beta1-a96ff59", V10_ARGS, EMPTY_WAIT_FLAG),
        ("docker.io/kubeflowkatib/tfevent-metrics-collector", V10_ARGS, EMPTY_WAIT_FLAG),
        ("docker.io/kubeflowkatib/tfevent-metrics-collector:v0.10.0", V10_ARGS, EMPTY_WAIT_FLAG),
        ("docker.io/kubeflowkatib/tfevent-metrics-collector:v0.10.1", V10_ARGS, WAIT_FLAG),
        ("docker.io/kubeflowkatib/tfevent-metrics-collector:v0.17.0-rc.1", V10_ARGS, WAIT_FLAG),
        ("ghcr.io/kubeflow/katib/tfevent-metrics-collector:v0.19.0@sha256:0123", V10_ARGS, WAIT_FLAG),
        ("ghcr.io/kubeflow/katib/tfevent-metrics-collector@sha256:0123", V10_ARGS, EMPTY_WAIT_FLAG),
    ],
)
def test_wait_form_by_collector_and_version(image: str, args: list[str], form: str | None) -> None:
    assert wait_form(image, args) == form


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("x/tfevent-metrics-collector:v0.10.1", (0, 10, 1)),
        ("localhost:5000/c:0.11.0", (0, 11, 0)),
        ("c:v0.17.0-rc.0", (0, 17, 0)),
        ("c:v1beta1-a96ff59", None),
        ("c", None),
        ("c:latest", None),
        ("c@sha256:0123", None),
        ("c:v" + "9" * 5000 + ".0.0", None),  # past int()'s digit limit: no release, no exception
    ],
)
def test_release(image: str, version: tuple[int, ...] | None) -> None:
    assert release(image) == version


def test_a_collector_without_wait_flag_loses_every_form_and_gets_none() -> None:
    assert wait_only_for_main([*V09_ARGS, "-w", "true", "-w=false"], None) == V09_ARGS
    assert wait_only_for_main(V09_ARGS, None) == V09_ARGS


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0", "file-metrics-collector"),
        ("docker.io/kubeflowkatib/file-metrics-collector", "file-metrics-collector"),
        ("localhost:5000/katib/tfevent-metrics-collector:v0.17.0", "tfevent-metrics-collector"),
        ("registry.example.com:443/file-metrics-collector@sha256:0123abcd", "file-metrics-collector"),
        ("file-metrics-collector:v1beta1-a96ff59", "file-metrics-collector"),
    ],
)
def test_image_name(image: str, name: str) -> None:
    assert image_name(image) == name


# --- when the proxy needs stopping --------------------------------------------------------------


def test_classic_proxy_detection() -> None:
    assert classic_proxy(trial_pod(proxy="classic"))
    assert not classic_proxy(trial_pod(proxy="native"))
    assert not classic_proxy(trial_pod(proxy=None))
    # Before Istio's injector has run (reinvocation), the label or annotation announces the proxy.
    pod = trial_pod(proxy=None)
    pod["metadata"]["annotations"] = {"sidecar.istio.io/inject": "true"}
    assert classic_proxy(pod)
    pod["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"  # the label wins, as in istiod
    assert not classic_proxy(pod)


# --- per Katib version ---------------------------------------------------------------------------


def without_wait_all(args: list[str]) -> list[str]:
    if "-w" not in args:
        return args
    i = args.index("-w")
    return args[:i] + args[i + 2 :]


@pytest.mark.parametrize("version", KATIB_VERSIONS)
def test_classic_proxy_pod_gets_wait_flag_and_wrapper(version: str) -> None:
    pod = trial_pod(version, proxy="classic")
    after, result = apply(pod)
    container = collector_of(after)
    original = collector_of(pod)
    assert sum(a.lstrip("-").split("=")[0] == "w" for a in container["args"]) == 1
    assert container["args"].count("-w=false") == 1
    # The original arguments, in order, minus Katib's "-w true" (set when katib-config has waitAllProcesses).
    remaining = [a for a in container["args"] if a != "-w=false"]
    assert remaining == without_wait_all(original["args"])
    command = container["command"]
    assert command[:2] == ["sh", "-c"]
    assert command[3] == "metrics-logger-and-collector"
    assert '\n./file-metricscollector "$$@"\n' in command[2]
    # Nothing else in the Pod changes.
    assert {k: v for k, v in container.items() if k not in ("args", "command")} == {
        k: v for k, v in original.items() if k != "args"
    }
    assert after["spec"]["containers"][:-1] == pod["spec"]["containers"][:-1]
    assert result.warnings == ()
    assert mutate(after, CONFIG).ops == ()


@pytest.mark.parametrize("version", KATIB_VERSIONS)
@pytest.mark.parametrize("proxy", ["native", None])
def test_without_a_classic_proxy_only_the_wait_flag_changes(version: str, proxy: str | None) -> None:
    pod = trial_pod(version, proxy=proxy)
    after, result = apply(pod)
    container = collector_of(after)
    assert "command" not in container
    assert "-w=false" in container["args"]
    (op,) = result.ops
    original = collector_of(pod)["args"]
    if container["args"] == ["-w=false", *original]:  # the flag in front: only it is sent
        assert op == {"op": "add", "path": "/spec/containers/1/args/0", "value": "-w=false"}
    else:  # a -w form given was replaced where it stood
        assert op["path"] == "/spec/containers/1/args"
    assert mutate(after, CONFIG).ops == ()


@pytest.mark.parametrize("args", [[], None, "absent"])
def test_a_collector_given_no_arguments_gets_only_the_wait_flag(args: list[str] | str | None) -> None:
    pod = trial_pod(proxy=None)
    if args == "absent":
        del collector_of(pod)["args"]
    else:
        collector_of(pod)["args"] = args
    after, _ = apply(pod)
    assert collector_of(after)["args"] == ["-w=false"]
    assert mutate(after, CONFIG).ops == ()


def test_tfevent_collector_uses_its_own_entrypoint() -> None:
    pod = trial_pod(tfevent=True)
    after, result = apply(pod)
    container = collector_of(after)
    assert container["name"] == "metrics-collector"
    assert 'python main.py "$$@"' in container["command"][2]
    assert "-w=false" in container["args"]
    assert result.warnings == ()


def test_entrypoints_come_from_the_configuration() -> None:
    config = dataclasses.replace(
        CONFIG, collector_entrypoints={"file-metrics-collector": ("/app/collect", "--v")}
    )
    after, _ = apply(trial_pod(), config)
    assert '/app/collect --v "$$@"' in collector_of(after)["command"][2]


def test_unknown_image_of_the_file_collector_is_not_wrapped_but_warned() -> None:
    pod = trial_pod()
    collector_of(pod)["image"] = "registry.example.com/mirror/katib-collector:1"
    after, result = apply(pod)
    assert "command" not in collector_of(after)
    assert "-w=false" in collector_of(after)["args"]
    assert len(result.warnings) == 1
    assert "katib-collector" in result.warnings[0]


def test_custom_collector_is_left_alone_with_a_warning() -> None:
    pod = trial_pod(tfevent=True)
    collector_of(pod)["image"] = "example.com/my-prometheus-scraper:2"
    _, result = apply(pod)
    assert result.ops == ()
    assert result.warnings


def test_collector_with_its_own_command_keeps_it() -> None:
    pod = trial_pod()
    collector_of(pod)["command"] = ["/bin/collect"]
    after, result = apply(pod)
    assert collector_of(after)["command"] == ["/bin/collect"]
    assert "-w=false" in collector_of(after)["args"]
    assert "own command" in result.warnings[0]


def test_wrapper_is_removed_when_the_proxy_turns_out_native() -> None:
    wrapped, _ = apply(trial_pod(proxy="classic"))
    native = trial_pod(proxy="native")
    collector_of(native).update(collector_of(wrapped))
    after, _ = apply(native)
    assert "command" not in collector_of(after)
    assert collector_of(after)["args"] == collector_of(wrapped)["args"]
    assert mutate(after, CONFIG).ops == ()


def test_wrapper_follows_a_changed_stop_method() -> None:
    wrapped, _ = apply(trial_pod())
    assert "wget" in collector_of(wrapped)["command"][2]
    rewrapped, result = apply(wrapped, dataclasses.replace(CONFIG, sidecar_stop="signal"))
    assert [op["op"] for op in result.ops] == ["replace"]
    assert "wget" not in collector_of(rewrapped)["command"][2]
    assert is_wrapper(collector_of(rewrapped)["command"])


def test_non_string_args_are_warned_about() -> None:
    pod = trial_pod()
    collector_of(pod)["args"] = ["-t", 3]
    result = mutate(pod, CONFIG)
    assert result.ops == ()
    assert result.warnings


@given(st.text())
def test_kubelet_escape_survives_kubelet_expansion(text: str) -> None:
    assert kubelet_expand(kubelet_escape(text), {"A": "x", "HOME": "/root"}) == text


# --- the wrapper under a real shell --------------------------------------------------------------

TRICKY_ARGS = [
    "-t",
    "trial-1",
    "-m",
    "accuracy;loss|x",
    "-f",
    r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",
    "-w",
    "true",
    "-stop-rule",
    "accuracy;0.8;less;3",
    "-label",
    "$(POD_NAME)",
    "-dollars",
    "$$HOME $1 $@ ${x}",
    "-quotes",
    'it\'s "quoted" (x) `echo no` \\ back\nnewline',
    "-empty",
    "",
]
EXPECTED_ARGV = [  # TRICKY_ARGS after the kubelet's expansion, with the single -w=false where -w was
    "-t",
    "trial-1",
    "-m",
    "accuracy;loss|x",
    "-f",
    r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",
    "-w=false",
    "-stop-rule",
    "accuracy;0.8;less;3",
    "-label",
    "pod-x",
    "-dollars",
    "$HOME $1 $@ ${x}",
    "-quotes",
    'it\'s "quoted" (x) `echo no` \\ back\nnewline',
    "-empty",
    "",
]

STUB_COLLECTOR = """#!/bin/sh
printf '%s\\0' "$@" > "$STUB_DIR/argv"
echo collector >> "$STUB_DIR/events"
exit "$STUB_RC"
"""
STAND_IN_PROXY = f"""#!{os.path.realpath(sys.executable)}
# Stands in for pilot-agent (or envoy): its process name is this file's name.
import os, signal, sys, time
name = os.path.basename(sys.argv[0])
def stop(number, frame):
    with open(os.path.join(os.environ["STUB_DIR"], "events"), "a") as events:
        events.write("TERM " + name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(os.environ["STUB_DIR"], "proxy-ready"), "w").close()
while True:
    time.sleep(60)
"""
POD = """#!/bin/sh
# The Pod's shared process namespace: a stand-in proxy, then the wrapped collector ("$@"). Waits (at
# most 60 s) for the stand-in to be gone before leaving, because the namespace ends with this process.
"$STUB_PROXY" &
proxy=$!
while [ ! -e "$STUB_DIR/proxy-ready" ]; do /bin/sleep 0.1; done
"$@"
rc=$?
if [ "$EXPECT_SIGNAL" = 1 ]; then
  i=0
  while [ "$i" -lt 600 ] && read -r _ _ state _ < "/proc/$proxy/stat" && [ "$state" != Z ]; do
    /bin/sleep 0.1
    i=$((i + 1))
  done
fi
exit "$rc"
"""
SHELLS = {
    "dash": shutil.which("dash"),
    "bash": shutil.which("bash"),
    "busybox": shutil.which("busybox"),  # Debian's: ash, a wget without -T, no pkill
}
TOOLSETS = {
    # Debian's BusyBox applets, as in a BusyBox-based collector image.
    "busybox": {"wget": SHELLS["busybox"], "sleep": SHELLS["busybox"]},
    # An image with Python and coreutils but no wget.
    "python": {"python3": os.path.realpath(sys.executable), "sleep": shutil.which("sleep")},
    # Python only as `python`, as in Katib 0.10.0's TFEvent image (Python 2.7).
    "python-named": {"python": os.path.realpath(sys.executable), "sleep": shutil.which("sleep")},
    # Neither an HTTP client nor pkill, nor even sleep: only the shell and /proc.
    "bare": {},
}


class QuitServer(http.server.ThreadingHTTPServer):
    """Stands in for pilot-agent's status port; records each request in the events file."""

    def __init__(self, events: pathlib.Path) -> None:
        self.events = events

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with open(events, "a") as f:
                    f.write(f"quit {self.command} {self.path}\n")
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@dataclasses.dataclass
class Sandbox:
    """A collector image: a shell as ``sh`` and the given tools, nothing else, on PATH."""

    dir: pathlib.Path
    server: QuitServer

    @property
    def quit_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/quitquitquit"


@pytest.fixture
def sandbox(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    shell, toolset = getattr(request, "param", ("dash", "busybox"))
    shell_path = SHELLS[shell]
    assert shell_path, f"{shell} is not installed (CI installs it: apt-get install {shell})"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shell_path)  # BusyBox runs the applet its argv[0] names
    for name, target in TOOLSETS[toolset].items():
        assert target, f"{name} is missing"
        (bin_dir / name).symlink_to(target)
    for path, text in (
        (tmp_path / "file-metricscollector", STUB_COLLECTOR),
        (tmp_path / "pilot-agent", STAND_IN_PROXY),
        (tmp_path / "envoy", STAND_IN_PROXY),
        (tmp_path / "pod", POD),
    ):
        path.write_text(text)
        path.chmod(0o755)
    (tmp_path / "events").touch()
    server = QuitServer(tmp_path / "events")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Sandbox(tmp_path, server)
    server.shutdown()
    server.server_close()


def run_wrapped(
    sandbox: Sandbox,
    url: str,
    config: Config = CONFIG,
    rc: int = 0,
    extra_env: dict[str, str] | None = None,
    proxy: str | None = None,
) -> tuple[subprocess.CompletedProcess[bytes], list[str], list[str]]:
    """Runs the wrapped collector; with ``proxy`` ("pilot-agent" or "envoy"), in a PID namespace of its
    own (``unshare --pid --fork --mount-proc``, as root) beside a stand-in process of that name."""
    pod = trial_pod()
    collector_of(pod)["args"] = TRICKY_ARGS
    after, _ = apply(pod, config)
    container = collector_of(after)
    env_vars = {"POD_NAME": "pod-x"}
    argv = [kubelet_expand(a, env_vars) for a in container["command"] + container["args"]]
    argv[2] = argv[2].replace(QUIT_URL, url)
    env = {
        "PATH": str(sandbox.dir / "bin"),
        "STUB_DIR": str(sandbox.dir),
        "STUB_RC": str(rc),
        **(extra_env or {}),
    }
    if proxy is not None:
        env |= {"STUB_PROXY": str(sandbox.dir / proxy), "EXPECT_SIGNAL": "1"}
        unshare = shutil.which("unshare")
        assert unshare is not None, "unshare (util-linux) is missing"
        argv = [unshare, "--pid", "--fork", "--mount-proc", str(sandbox.dir / "pod"), *argv]
    completed = subprocess.run(argv, cwd=sandbox.dir, env=env, capture_output=True, timeout=120)
    events = (sandbox.dir / "events").read_text().splitlines()
    recorded = (sandbox.dir / "argv").read_bytes().split(b"\0")[:-1]
    return completed, events, [a.decode() for a in recorded]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/quitquitquit"


HTTP_IMAGES = [(shell, toolset) for shell in SHELLS for toolset in ("busybox", "python", "python-named")]
ALL_IMAGES = [(shell, toolset) for shell in SHELLS for toolset in TOOLSETS]


@pytest.mark.parametrize("sandbox", HTTP_IMAGES, indirect=True, ids="-".join)
@pytest.mark.parametrize("rc", [0, 3])
def test_wrapper_passes_args_verbatim_quits_after_and_keeps_the_exit_code(sandbox: Sandbox, rc: int) -> None:
    completed, events, argv = run_wrapped(sandbox, sandbox.quit_url, rc=rc)
    assert argv == EXPECTED_ARGV
    assert events == ["collector", "quit POST /quitquitquit"]
    assert completed.returncode == rc


@pytest.mark.parametrize("sandbox", HTTP_IMAGES, indirect=True, ids="-".join)
def test_a_proxy_in_the_environment_is_not_used_for_the_local_call(sandbox: Sandbox) -> None:
    unreachable = closed_port_url().removesuffix("/quitquitquit")
    _, events, _ = run_wrapped(sandbox, sandbox.quit_url, extra_env={"http_proxy": unreachable})
    assert events == ["collector", "quit POST /quitquitquit"]


@pytest.mark.parametrize("sandbox", ALL_IMAGES, indirect=True, ids="-".join)
@pytest.mark.parametrize("rc", [0, 2])
def test_the_shell_signals_pilot_agent_when_the_status_port_does_not_answer(
    sandbox: Sandbox, rc: int
) -> None:
    completed, events, argv = run_wrapped(sandbox, closed_port_url(), rc=rc, proxy="pilot-agent")
    assert argv == EXPECTED_ARGV
    assert events == ["collector", "TERM pilot-agent"]
    assert completed.returncode == rc


@pytest.mark.parametrize("sandbox", [("busybox", "bare"), ("dash", "bare")], indirect=True, ids="-".join)
def test_envoy_is_signalled_when_there_is_no_pilot_agent(sandbox: Sandbox) -> None:
    completed, events, _ = run_wrapped(sandbox, closed_port_url(), rc=4, proxy="envoy")
    assert events == ["collector", "TERM envoy"]
    assert completed.returncode == 4


@pytest.mark.parametrize("sandbox", [("busybox", "busybox"), ("dash", "python")], indirect=True, ids="-".join)
def test_a_status_port_that_never_answers_is_given_up_and_the_proxy_signalled(sandbox: Sandbox) -> None:
    """BusyBox's wget without -T would wait for ever; the wrapper kills each step after a bound."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete, nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/quitquitquit"
        completed, events, _ = run_wrapped(sandbox, url, rc=0, proxy="pilot-agent")
    assert events == ["collector", "TERM pilot-agent"]
    assert completed.returncode == 0


@pytest.mark.parametrize("sandbox", [("dash", "busybox"), ("busybox", "bare")], indirect=True, ids="-".join)
def test_signal_mode_does_not_call_the_status_port(sandbox: Sandbox) -> None:
    config = dataclasses.replace(CONFIG, sidecar_stop="signal")
    completed, events, argv = run_wrapped(sandbox, sandbox.quit_url, config=config, proxy="pilot-agent")
    assert events == ["collector", "TERM pilot-agent"]
    assert argv == EXPECTED_ARGV
    assert completed.returncode == 0


def test_debian_busybox_is_the_build_without_wget_timeout_and_pkill() -> None:
    """What makes the busybox sandbox meaningful: the options the wrapper must not rely on are absent."""
    busybox = SHELLS["busybox"]
    assert busybox, "busybox is not installed"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    assert "pkill" not in applets.stdout.split()
    crashed = subprocess.run(
        [busybox, "wget", "-q", "-T", "1", "-O", "/dev/null", closed_port_url()],
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode != 0


def test_quit_url_is_pilot_agents_status_port() -> None:
    assert collector.QUIT_URL == "http://127.0.0.1:15020/quitquitquit"
