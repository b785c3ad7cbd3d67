"""The local node's pure parts: OCI archives, host bookkeeping, the containerd and kubelet configurations.
No control plane, no root needed."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from e2e.cluster import host, node
from e2e.framework import oci, versions
from e2e.peers import python_image


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_layer_has_parents_modes_links_and_is_deterministic(tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.write_bytes(b"\x7fELF...")
    layer = oci.Layer(
        files={"/app/run": program, "/etc/passwd": b"root\n"},
        symlinks={"/bin/sh": "busybox"},
        directories=["/tmp"],
    )
    data = oci.layer_tar(layer)
    assert data == oci.layer_tar(layer)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["app", "app/run", "bin", "bin/sh", "etc", "etc/passwd", "tmp"]
    assert members["app/run"].mode == 0o755 and members["etc/passwd"].mode == 0o644
    assert members["tmp"].mode == 0o1777 and members["bin/sh"].linkname == "busybox"
    assert {m.mtime for m in members.values()} == {0} and {m.uid for m in members.values()} == {0}


@pytest.mark.parametrize("path", ["relative/file", "/../escape", "/a/../../b"])
def test_layer_refuses_paths_outside_the_image(path: str) -> None:
    with pytest.raises(ValueError, match="not an absolute path"):
        oci.layer_tar(oci.Layer(files={path: b""}))


def test_layer_refuses_a_path_given_twice() -> None:
    with pytest.raises(ValueError, match="given twice"):
        oci.layer_tar(oci.Layer(files={"/bin/sh": b""}, symlinks={"/bin/sh": "busybox"}))
    with pytest.raises(ValueError, match="given twice"):
        oci.layer_tar(oci.Layer(files={"/bin": b"", "/bin/sh": b""}))


def test_archive_is_an_oci_layout_whose_digests_match() -> None:
    layer = oci.Layer(files={"/hello": b"hi\n"})
    config = oci.ImageConfig(entrypoint=["./run"], cmd=["-x"], working_dir="/app")
    blobs = _members(oci.image_archive("e2e.invalid/thing:7", layer, config))
    assert json.loads(blobs["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(blobs["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "e2e.invalid/thing:7"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "7"

    def blob(descriptor: dict[str, object]) -> bytes:
        digest = str(descriptor["digest"])
        data = blobs[f"blobs/sha256/{digest.removeprefix('sha256:')}"]
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == digest and len(data) == descriptor["size"]
        return data

    manifest = json.loads(blob(entry))
    image = json.loads(blob(manifest["config"]))
    (layer_descriptor,) = manifest["layers"]
    layer_bytes = blob(layer_descriptor)
    assert image["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]
    assert image["config"]["Entrypoint"] == ["./run"] and image["config"]["WorkingDir"] == "/app"
    assert image["config"]["Cmd"] == ["-x"] and image["os"] == "linux"
    assert _members(layer_bytes) == {"hello": b"hi\n"}


def test_busybox_layer_links_every_applet_but_itself(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"")
    layer = oci.busybox_layer(busybox, ["busybox", "sh", "wget"], oci.Layer(files={"/app/x": b""}))
    assert layer.symlinks == {"/bin/sh": "busybox", "/bin/wget": "busybox"}
    assert set(layer.files) == {"/bin/busybox", "/etc/passwd", "/etc/group", "/app/x"}


def test_the_full_busybox_is_named_by_its_debian_source_version_without_the_epoch(tmp_path: Path) -> None:
    environ = {versions.CACHE_ENV: str(tmp_path)}
    built = tmp_path / "busybox-1.35.0-4+deb12u1-full" / "bin" / "busybox"
    assert versions.full_busybox("1:1.35.0-4+deb12u1", environ) == built
    assert versions.full_busybox("1.35.0-4+deb12u1", environ) == built
    assert versions.installed_source_version("no-such-package-here") is None


def test_first_missing_is_the_outermost_created_directory(tmp_path: Path) -> None:
    assert host.first_missing(tmp_path) is None
    assert host.first_missing(tmp_path / "a" / "b" / "c") == tmp_path / "a"
    (tmp_path / "a").mkdir()
    assert host.first_missing(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b"


def test_mounts_beneath_roots_deepest_first() -> None:
    mountinfo = (
        "22 1 0:20 / /run rw - tmpfs tmpfs rw\n"
        "30 22 0:21 / /run/node/kubelet rw - tmpfs tmpfs rw\n"
        "31 30 0:22 / /run/node/kubelet/pods/x/volumes/token\\040dir rw - tmpfs tmpfs rw\n"
        "32 22 0:23 / /run/nodex rw - tmpfs tmpfs rw\n"
    )
    points = host.mount_points(mountinfo)
    assert "/run/node/kubelet/pods/x/volumes/token dir" in points
    assert host.beneath(points, [Path("/run/node")]) == [
        "/run/node/kubelet/pods/x/volumes/token dir",
        "/run/node/kubelet",
    ]


def test_cgroup_tree_is_removed_children_first(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "besteffort" / "pod1").mkdir(parents=True)
    (tmp_path / "kubepods" / "burstable").mkdir()
    assert host.remove_cgroup_tree(tmp_path / "kubepods") == []
    assert not (tmp_path / "kubepods").exists()


def test_containerd_config_keeps_everything_private(tmp_path: Path) -> None:
    config = tomllib.loads(node.containerd_config(tmp_path / "c", tmp_path / "c.sock", tmp_path / "net.d"))
    assert config["root"] == str(tmp_path / "c" / "root") and config["state"] == str(tmp_path / "c" / "state")
    assert config["grpc"]["address"] == str(tmp_path / "c.sock")
    plugins = config["plugins"]
    assert plugins["io.containerd.internal.v1.opt"]["path"].startswith(str(tmp_path))
    cri = plugins["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == node.PAUSE_IMAGE and cri["restrict_oom_score_adj"] is True
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(tmp_path / "net.d")}
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc == {"SystemdCgroup": False, "Root": str(tmp_path / "c" / "runc")}


def test_kubelet_serves_loopback_to_certificates_only(tmp_path: Path) -> None:
    config = node.kubelet_config(
        port=1,
        healthz_port=2,
        ca=tmp_path / "ca",
        serving=(tmp_path / "crt", tmp_path / "key"),
        socket=tmp_path / "sock",
        pod_logs=tmp_path / "logs",
    )
    assert config["address"] == config["healthzBindAddress"] == "127.0.0.1" and config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["registerWithTaints"] == [node.NODE_TAINT]
    assert config["containerRuntimeEndpoint"] == f"unix://{tmp_path / 'sock'}"


def test_pods_use_the_host_network_and_local_images() -> None:
    spec = node.pod("p", [{"name": "c", "image": node.BUSYBOX_IMAGE}], namespace="n")["spec"]
    assert spec["hostNetwork"] is True and spec["tolerations"] == [node.NODE_TOLERATION]
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


def test_static_executable_check(tmp_path: Path) -> None:
    assert not node.is_static_executable(Path(sys.executable).resolve())  # CPython links libc
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    assert not node.is_static_executable(text)


LDD_OUTPUT = """\tlinux-vdso.so.1 (0x00007ffc8a1f2000)
\tlibpython3.11.so.1.0 => /opt/python/lib/libpython3.11.so.1.0 (0x00007f2a5c000000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2a5bf21000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a5bd40000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2a5bf21000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2a5c6a4000)
"""


def test_ldd_libraries_are_the_resolved_paths_once_each_with_the_loader() -> None:
    assert python_image.ldd_libraries(LDD_OUTPUT) == [
        "/opt/python/lib/libpython3.11.so.1.0",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]
    with pytest.raises(FileNotFoundError, match="libssl"):
        python_image.ldd_libraries(LDD_OUTPUT + "\tlibssl.so.3 => not found\n")


def test_python_runtime_mounts_its_trees_read_only_and_layers_only_the_libraries(tmp_path: Path) -> None:
    library = tmp_path / "libc.so.6"
    library.write_bytes(b"\x7fELF")
    runtime = python_image.PythonRuntime(Path("/opt/venv"), Path("/opt/python"), (str(library),))
    busybox = oci.Layer(files={"/bin/busybox": b""}, symlinks={"/bin/sh": "busybox"}, directories=["/tmp"])
    layer = runtime.layer(busybox)
    assert layer.files == {"/bin/busybox": b"", str(library): library}
    assert layer.symlinks == busybox.symlinks and layer.directories == busybox.directories
    volumes, mounts = runtime.volumes()
    assert [v["hostPath"]["path"] for v in volumes] == ["/opt/venv", "/opt/python"]
    assert [(m["mountPath"], m["readOnly"]) for m in mounts] == [("/opt/venv", True), ("/opt/python", True)]
