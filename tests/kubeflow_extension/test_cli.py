from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeflow_extension", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_sync_prints_the_attachments_of_the_example_profile() -> None:
    result = run("sync", "--namespace", "examples/namespace.yaml", "--profile", "examples/profile.yaml")
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert {(d["kind"], d["metadata"]["namespace"]) for d in documents} == {
        ("AuthorizationPolicy", "kubeflow"),
        ("EnvoyFilter", "alice"),
    }


def test_sync_legacy_istio() -> None:
    result = run(
        "sync",
        "--namespace",
        "examples/namespace.yaml",
        "--profile",
        "examples/profile.yaml",
        "--legacy-istio",
    )
    assert {d["kind"] for d in yaml.safe_load_all(result.stdout)} == {"ServiceRoleBinding", "EnvoyFilter"}


def test_sync_without_profile_creates_nothing() -> None:
    result = run("sync", "--namespace", "examples/namespace.yaml")
    assert result.returncode == 0
    assert [d for d in yaml.safe_load_all(result.stdout) if d] == []


def test_sync_rejects_wrong_files(tmp_path: Path) -> None:
    result = run("sync", "--namespace", "examples/profile.yaml")
    assert result.returncode == 2 and "expected a Namespace" in result.stderr
    other = tmp_path / "p.yaml"
    other.write_text("kind: Profile\nmetadata: {name: bob}\nspec: {owner: {name: bob@x}}\n")
    result = run("sync", "--namespace", "examples/namespace.yaml", "--profile", str(other))
    assert result.returncode == 2 and "does not belong" in result.stderr


def test_mutate_prints_the_patch_the_webhook_would_send() -> None:
    import json

    result = run("mutate", "-f", "examples/katib-trial-job.yaml", "--patch")
    assert result.returncode == 0, result.stderr
    paths = {op["path"]: op["value"] for op in json.loads(result.stdout)}
    assert paths["/spec/template/spec/serviceAccountName"] == "default-editor"
    assert paths["/spec/template/metadata/labels/sidecar.istio.io~1inject"] == "true"


def test_mutate_prints_the_mutated_object_and_leaves_others_alone(tmp_path: Path) -> None:
    result = run("mutate", "-f", "examples/katib-trial-job.yaml")
    job = yaml.safe_load(result.stdout)
    assert job["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    pod = tmp_path / "pod.yaml"
    pod.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"
    )
    result = run("mutate", "-f", str(pod), "--patch")
    assert result.returncode == 0
    assert result.stdout.strip() == "[]"
    assert run("mutate", "-f", "examples/namespace.yaml").returncode == 2


def test_serve_webhook_refuses_to_run_without_tls() -> None:
    result = run("serve", "webhook", "--port", "0")
    assert result.returncode == 2
    assert "HTTPS" in result.stderr


def test_the_image_entry_point_serves_the_hooks_and_stops_gracefully_on_sigterm() -> None:
    """`kubeflow-extension serve hooks` as the image runs it, as a plain process."""
    import shutil
    import signal
    import socket
    import time
    import urllib.request

    executable = shutil.which("kubeflow-extension")
    assert executable, "the console script is installed with the package"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [executable, "serve", "hooks", "--host", "127.0.0.1", "--port", str(port), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the hooks did not become healthy"
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    # uvicorn drains, then exits by the signal it caught (as a process killed by SIGTERM would).
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Finished server process" in stderr
    assert all(line.startswith("{") for line in stderr.splitlines()), "every log line is JSON"


def test_sync_and_mutate_show_the_identity_mode() -> None:
    example = ("sync", "--namespace", "examples/namespace.yaml", "--profile", "examples/profile.yaml")
    assert "identity mode: header (from the configuration)" in run(*example).stderr
    result = run(*example, "--identity-mode", "token")
    assert result.returncode == 0, result.stderr
    assert "identity mode: token (from the configuration)" in result.stderr
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)] == ["AuthorizationPolicy"]
    result = run("mutate", "-f", "examples/katib-trial-job.yaml", "--identity-mode", "both")
    assert result.returncode == 0, result.stderr
    assert "identity mode: both" in result.stderr
    template = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]
    assert template["volumes"][-1]["name"] == "volume-kf-pipeline-token"


def test_sync_names_a_bad_mode_annotation(tmp_path: Path) -> None:
    namespace = yaml.safe_load((ROOT / "examples/namespace.yaml").read_text())
    namespace["metadata"].setdefault("annotations", {})["kubeflow-extension.kubeflow.org/identity-mode"] = "x"
    file = tmp_path / "ns.yaml"
    file.write_text(yaml.safe_dump(namespace))
    result = run("sync", "--namespace", str(file), "--profile", "examples/profile.yaml")
    assert result.returncode == 2 and "identity-mode='x'" in result.stderr
