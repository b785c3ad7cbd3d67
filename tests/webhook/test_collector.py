import dataclasses
import http.server
import shutil
import socket
import subprocess
import threading

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st
from katib_objects import KATIB_VERSIONS, kubelet_expand, trial_pod

from service.config import Config
from webhook.mutations import collector
from webhook.mutations.collector import (
    QUIT_URL,
    classic_proxy,
    image_name,
    is_wrapper,
    kubelet_escape,
    mutate,
    wait_only_for_main,
)

CONFIG = Config()


def collector_of(pod):
    return next(c for c in pod["spec"]["containers"] if c["name"].startswith("metrics-"))


def apply(pod, config=CONFIG):
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
def test_wait_only_for_main(args, expected):
    assert wait_only_for_main(args) == expected
    assert wait_only_for_main(expected) == expected


@given(
    st.lists(
        st.sampled_from(["-w", "--w", "-w=true", "--w=false", "true", "0", "-t", "x", "--", "-m", "a;b"])
    )
)
def test_wait_only_for_main_is_idempotent(args):
    once = wait_only_for_main(args)
    assert wait_only_for_main(once) == once
    assert once.count("-w=false") >= 1


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
def test_image_name(image, name):
    assert image_name(image) == name


# --- when the proxy needs stopping --------------------------------------------------------------


def test_classic_proxy_detection():
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


def without_wait_all(args):
    if "-w" not in args:
        return args
    i = args.index("-w")
    return args[:i] + args[i + 2 :]


@pytest.mark.parametrize("version", KATIB_VERSIONS)
def test_classic_proxy_pod_gets_wait_flag_and_wrapper(version):
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
def test_without_a_classic_proxy_only_the_wait_flag_changes(version, proxy):
    pod = trial_pod(version, proxy=proxy)
    after, result = apply(pod)
    container = collector_of(after)
    assert "command" not in container
    assert "-w=false" in container["args"]
    assert [op["path"] for op in result.ops] == ["/spec/containers/1/args"]
    assert mutate(after, CONFIG).ops == ()


def test_tfevent_collector_uses_its_own_entrypoint():
    pod = trial_pod(tfevent=True)
    after, result = apply(pod)
    container = collector_of(after)
    assert container["name"] == "metrics-collector"
    assert 'python main.py "$$@"' in container["command"][2]
    assert "-w=false" in container["args"]
    assert result.warnings == ()


def test_entrypoints_come_from_the_configuration():
    config = dataclasses.replace(
        CONFIG, collector_entrypoints={"file-metrics-collector": ("/app/collect", "--v")}
    )
    after, _ = apply(trial_pod(), config)
    assert '/app/collect --v "$$@"' in collector_of(after)["command"][2]


def test_unknown_image_of_the_file_collector_is_not_wrapped_but_warned():
    pod = trial_pod()
    collector_of(pod)["image"] = "registry.example.com/mirror/katib-collector:1"
    after, result = apply(pod)
    assert "command" not in collector_of(after)
    assert "-w=false" in collector_of(after)["args"]
    assert len(result.warnings) == 1
    assert "katib-collector" in result.warnings[0]


def test_custom_collector_is_left_alone_with_a_warning():
    pod = trial_pod(tfevent=True)
    collector_of(pod)["image"] = "example.com/my-prometheus-scraper:2"
    _, result = apply(pod)
    assert result.ops == ()
    assert result.warnings


def test_collector_with_its_own_command_keeps_it():
    pod = trial_pod()
    collector_of(pod)["command"] = ["/bin/collect"]
    after, result = apply(pod)
    assert collector_of(after)["command"] == ["/bin/collect"]
    assert "-w=false" in collector_of(after)["args"]
    assert "own command" in result.warnings[0]


def test_wrapper_is_removed_when_the_proxy_turns_out_native():
    wrapped, _ = apply(trial_pod(proxy="classic"))
    native = trial_pod(proxy="native")
    collector_of(native).update(collector_of(wrapped))
    after, _ = apply(native)
    assert "command" not in collector_of(after)
    assert collector_of(after)["args"] == collector_of(wrapped)["args"]
    assert mutate(after, CONFIG).ops == ()


def test_wrapper_follows_a_changed_stop_method():
    wrapped, _ = apply(trial_pod())
    assert "wget" in collector_of(wrapped)["command"][2]
    rewrapped, result = apply(wrapped, dataclasses.replace(CONFIG, sidecar_stop="signal"))
    assert [op["op"] for op in result.ops] == ["replace"]
    assert "wget" not in collector_of(rewrapped)["command"][2]
    assert is_wrapper(collector_of(rewrapped)["command"])


def test_non_string_args_are_warned_about():
    pod = trial_pod()
    collector_of(pod)["args"] = ["-t", 3]
    result = mutate(pod, CONFIG)
    assert result.ops == ()
    assert result.warnings


@given(st.text())
def test_kubelet_escape_survives_kubelet_expansion(text):
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
STUB_PKILL = """#!/bin/sh
echo "pkill $*" >> "$STUB_DIR/events"
if [ "$2" = pilot-agent ]; then exit "${PILOT_RC:-0}"; fi
"""
FAILING = "#!/bin/sh\nexit 1\n"
SHELLS = [s for s in ("dash", "busybox", "bash") if shutil.which(s)]


class QuitServer(http.server.ThreadingHTTPServer):
    """Stands in for pilot-agent's status port; records each request in the events file."""

    def __init__(self, events):
        self.events = events

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                with open(events, "a") as f:
                    f.write(f"quit {self.command} {self.path}\n")
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def sandbox(tmp_path, request):
    shell = getattr(request, "param", "dash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for path, text in ((tmp_path / "file-metricscollector", STUB_COLLECTOR), (bin_dir / "pkill", STUB_PKILL)):
        path.write_text(text)
        path.chmod(0o755)
    if shell == "busybox":
        (bin_dir / "sh").write_text(f'#!/bin/sh\nexec {shutil.which("busybox")} sh "$@"\n')
        (bin_dir / "sh").chmod(0o755)
    else:
        (bin_dir / "sh").symlink_to(shutil.which(shell))
    server = QuitServer(tmp_path / "events")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, server
    server.shutdown()
    server.server_close()


def run_wrapped(tmp_path, url, config=CONFIG, rc=0, extra_env=None):
    pod = trial_pod()
    collector_of(pod)["args"] = TRICKY_ARGS
    after, _ = apply(pod, config)
    container = collector_of(after)
    env_vars = {"POD_NAME": "pod-x"}
    argv = [kubelet_expand(a, env_vars) for a in container["command"] + container["args"]]
    argv[2] = argv[2].replace(QUIT_URL, url)
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "STUB_DIR": str(tmp_path),
        "STUB_RC": str(rc),
        **(extra_env or {}),
    }
    completed = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=30)
    events = (tmp_path / "events").read_text().splitlines()
    recorded = (tmp_path / "argv").read_bytes().split(b"\0")[:-1]
    return completed, events, [a.decode() for a in recorded]


def url_of(server):
    return f"http://127.0.0.1:{server.server_address[1]}/quitquitquit"


@pytest.mark.parametrize("sandbox", SHELLS, indirect=True)
@pytest.mark.parametrize("rc", [0, 3])
def test_wrapper_passes_args_verbatim_quits_after_and_keeps_the_exit_code(sandbox, rc):
    tmp_path, server = sandbox
    completed, events, argv = run_wrapped(tmp_path, url_of(server), rc=rc)
    assert argv == EXPECTED_ARGV
    assert events == ["collector", "quit POST /quitquitquit"]
    assert completed.returncode == rc


def test_a_proxy_in_the_environment_is_not_used_for_the_local_call(sandbox):
    tmp_path, server = sandbox
    unreachable = closed_port_url().removesuffix("/quitquitquit")
    _, events, _ = run_wrapped(tmp_path, url_of(server), extra_env={"http_proxy": unreachable})
    assert events == ["collector", "quit POST /quitquitquit"]


def test_python_posts_when_wget_is_missing(sandbox):
    tmp_path, server = sandbox
    (tmp_path / "bin" / "wget").write_text(FAILING)
    (tmp_path / "bin" / "wget").chmod(0o755)
    completed, events, _ = run_wrapped(tmp_path, url_of(server), rc=5)
    assert events == ["collector", "quit POST /quitquitquit"]
    assert completed.returncode == 5


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/quitquitquit"


@pytest.mark.parametrize(("pilot_rc", "signalled"), [(0, ["pilot-agent"]), (1, ["pilot-agent", "envoy"])])
def test_signal_is_the_fallback_when_the_status_port_does_not_answer(sandbox, pilot_rc, signalled):
    tmp_path, _ = sandbox
    completed, events, _ = run_wrapped(
        tmp_path, closed_port_url(), rc=2, extra_env={"PILOT_RC": str(pilot_rc)}
    )
    assert events == ["collector", *(f"pkill -TERM {name}" for name in signalled)]
    assert completed.returncode == 2


def test_signal_mode_does_not_call_the_status_port(sandbox):
    tmp_path, server = sandbox
    config = dataclasses.replace(CONFIG, sidecar_stop="signal")
    completed, events, argv = run_wrapped(tmp_path, url_of(server), config=config)
    assert events == ["collector", "pkill -TERM pilot-agent"]
    assert argv == EXPECTED_ARGV
    assert completed.returncode == 0


def test_quit_url_is_pilot_agents_status_port():
    assert collector.QUIT_URL == "http://127.0.0.1:15020/quitquitquit"
