"""Single-layer OCI image archives, built from files on this machine, for a node without a registry.

``containerd``'s ``ctr images import`` reads the archive (an OCI image layout in a tar) and names the image
after the ``io.containerd.image.name`` annotation; the Pods then use ``imagePullPolicy: Never``. The layer
and every header in it are deterministic (mtime 0, uid/gid 0), so the same files give the same digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Layer:
    """The files of a layer: ``files`` maps an absolute path in the image to its content, bytes (mode 0644)
    or a host program to copy (mode 0755); ``symlinks`` maps a path to its target; ``directories``
    are created empty (mode 1777 for ``/tmp``, 0755 otherwise). Parent directories are implied."""

    files: Mapping[str, bytes | Path] = field(default_factory=dict)
    symlinks: Mapping[str, str] = field(default_factory=dict)
    directories: Sequence[str] = ()


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's run configuration a container runtime reads."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    working_dir: str = ""
    env: Sequence[str] = (f"PATH={DEFAULT_PATH}",)


def _relative(path: str) -> str:
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"not an absolute path inside the image: {path!r}")
    return str(pure.relative_to("/"))


def _parents(relative: str) -> list[str]:
    parts = PurePosixPath(relative).parts[:-1]
    return [str(PurePosixPath(*parts[: i + 1])) for i in range(len(parts))]


def _header(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
    info.uname = info.gname = "root"
    return info


def layer_tar(layer: Layer) -> bytes:
    """The layer as an uncompressed tar, entries in sorted order."""
    files = {_relative(path): content for path, content in layer.files.items()}
    symlinks = {_relative(path): target for path, target in layer.symlinks.items()}
    directories = {_relative(path) for path in layer.directories}
    for relative in [*files, *symlinks, *directories]:
        directories.update(_parents(relative))
    clash = directories & (files.keys() | symlinks.keys()) or files.keys() & symlinks.keys()
    if clash:
        raise ValueError(f"paths given twice: {sorted(clash)}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(directories | files.keys() | symlinks.keys()):
            if name in directories:
                tar.addfile(_header(name, tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755))
            elif name in symlinks:
                info = _header(name, tarfile.SYMTYPE, 0o777)
                info.linkname = symlinks[name]
                tar.addfile(info)
            else:
                content = files[name]
                data = content.read_bytes() if isinstance(content, Path) else content
                info = _header(name, tarfile.REGTYPE, 0o755 if isinstance(content, Path) else 0o644)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data), **extra}


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_archive(reference: str, layer: Layer, config: ImageConfig) -> bytes:
    """An OCI image layout tar holding one image named ``reference`` (e.g. ``e2e.invalid/busybox:1``)."""
    layer_bytes = layer_tar(layer)
    run_config: dict[str, Any] = {"Env": list(config.env)}
    if config.entrypoint:
        run_config["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        run_config["Cmd"] = list(config.cmd)
    if config.working_dir:
        run_config["WorkingDir"] = config.working_dir
    config_bytes = _canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": run_config,
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_bytes)]},
        }
    )
    manifest_bytes = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config_bytes),
            "layers": [_descriptor(LAYER_MEDIA_TYPE, layer_bytes)],
        }
    )
    tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else "latest"
    annotations = {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": tag}
    index_bytes = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [_descriptor(MANIFEST_MEDIA_TYPE, manifest_bytes, annotations=annotations)],
        }
    )
    blobs = {
        f"blobs/sha256/{_digest(b).split(':', 1)[1]}": b for b in (layer_bytes, config_bytes, manifest_bytes)
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entries = {
            "oci-layout": _canonical({"imageLayoutVersion": "1.0.0"}),
            "index.json": index_bytes,
            **blobs,
        }
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(_header(directory, tarfile.DIRTYPE, 0o755))
        for name, data in entries.items():
            info = _header(name, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def busybox_layer(busybox: Path, applets: Sequence[str], extra: Layer | None = None) -> Layer:
    """A root file system made of one static BusyBox: ``/bin/busybox``, a ``/bin/<applet>`` link per applet,
    ``/tmp``, a root user; plus the files of ``extra``."""
    links = {f"/bin/{applet}": "busybox" for applet in applets if applet != "busybox"}
    users = {"/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n", "/etc/group": b"root:x:0:\n"}
    extra = extra or Layer()
    return Layer(
        files={"/bin/busybox": busybox, **users, **extra.files},
        symlinks={**links, **extra.symlinks},
        directories=["/tmp", "/root", *extra.directories],
    )
