"""The one documented place for configuration.

Values come from a YAML file named by ``KFEXT_CONFIG_FILE`` (optional), then from ``KFEXT_*``
environment variables, which win. Every default is what a stock Kubeflow install needs, so an empty
configuration is a working one. Invalid values stop the process at start with a message that names
the setting, instead of surfacing later as a wrong Istio object.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "KFEXT_"
CONFIG_FILE_ENV = "KFEXT_CONFIG_FILE"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
HTTP_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTITY_MODES = ("header", "token", "both")
"""header: the EnvoyFilter sets the owner's header (KFP 1.1-1.6, sidecars). token: a projected
ServiceAccount token (KFP >= 1.7, any data plane). both: the two at once, for a migration."""
MIN_TOKEN_EXPIRATION_SECONDS = 600
"""The shortest projected token lifetime the API server accepts."""


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range."""


@dataclass(frozen=True)
class Config:
    """Settings of both services. Field names, lower-cased, are the YAML keys; ``KFEXT_`` + upper-case
    name is the environment variable."""

    kubeflow_namespace: str = "kubeflow"
    """Namespace of Kubeflow Pipelines; the authorization objects are created here."""
    service_account: str = "default-editor"
    """Service account of profile namespaces that may reach ml-pipeline; trial Jobs are given it."""
    userid_header: str = "kubeflow-userid"
    """Identity header that ml-pipeline reads (KFP's KUBEFLOW_USERID_HEADER)."""
    userid_prefix: str = ""
    """Prefix of the header value (KFP's KUBEFLOW_USERID_PREFIX), e.g. ``accounts.google.com:`` on IAP."""
    ml_pipeline_service: str = "ml-pipeline"
    """Name of the ml-pipeline Service in the Kubeflow namespace."""
    ml_pipeline_port: int = 8888
    """HTTP port of the ml-pipeline API: the only port the header is set on and access is granted to
    (8887 is gRPC)."""
    cluster_domain: str = "cluster.local"
    """Cluster DNS domain and Istio trust domain."""
    workload_label: str = "kubeflow-extension"
    """Label (value ``"true"``) that marks workloads which get the identity header."""
    sidecar_stop: str = "quitquitquit"
    """How the collector stops a classic Istio proxy: ``quitquitquit`` (then a signal) or ``signal``."""
    kale_retry_seconds: int = 900
    """Total time Kale's run polling keeps retrying an unreachable ml-pipeline before giving up."""
    kale_retry_max_delay_seconds: int = 60
    """Longest pause between two retries of Kale's run polling."""
    collector_entrypoints: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "file-metrics-collector": ("./file-metricscollector",),
            "tfevent-metrics-collector": ("python", "main.py"),
        }
    )
    """Collector image name (last path element, without tag) -> its ENTRYPOINT; Katib sets only args."""
    identity_mode: str = "header"
    """How workloads prove who they are to ml-pipeline: ``header``, ``token`` or ``both``."""
    token_audience: str = "pipelines.kubeflow.org"  # noqa: S105
    """Audience of the projected token (KFP's TOKEN_REVIEW_AUDIENCE)."""
    token_expiration_seconds: int = 7200
    """Requested lifetime of the projected token; the kubelet refreshes it well before."""
    token_directory: str = "/var/run/secrets/kubeflow/pipelines"  # noqa: S105
    """Where the token volume is mounted, read-only, in every container."""
    token_file: str = "token"  # noqa: S105
    """File name of the token inside token_directory."""
    token_volume: str = "volume-kf-pipeline-token"  # noqa: S105
    """Volume name; the one of Kubeflow's ``access-ml-pipeline`` PodDefault, so its mount is recognised."""
    token_path_env: str = "KF_PIPELINES_SA_TOKEN_PATH"  # noqa: S105
    """Environment variable the KFP SDK (>= 1.7) reads the token's path from."""

    @property
    def ml_pipeline_host(self) -> str:
        """The virtual host name Envoy gives ml-pipeline's HTTP port."""
        return f"{self.ml_pipeline_service}.{self.kubeflow_namespace}.svc.{self.cluster_domain}"

    def principal(self, namespace: str) -> str:
        """The Istio (SPIFFE) principal of the namespace's service account."""
        return f"{self.cluster_domain}/ns/{namespace}/sa/{self.service_account}"

    def userid(self, owner: str) -> str:
        """The identity header value ml-pipeline expects for a profile owner."""
        return f"{self.userid_prefix}{owner}"

    @property
    def token_path(self) -> str:
        """The token file as a container sees it."""
        return f"{self.token_directory.rstrip('/')}/{self.token_file}"

    def validate(self) -> Config:
        """Raise ConfigError on the first bad value; return self so it can be chained."""
        for name in ("kubeflow_namespace", "service_account", "ml_pipeline_service"):
            if not DNS_LABEL.match(getattr(self, name)):
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not a DNS label")
        if not DNS_SUBDOMAIN.match(self.cluster_domain):
            raise ConfigError(f"cluster_domain: {self.cluster_domain!r} is not a DNS name")
        if not HTTP_HEADER_NAME.match(self.userid_header):
            raise ConfigError(f"userid_header: {self.userid_header!r} is not a lower-case HTTP header name")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.userid_prefix):
            raise ConfigError("userid_prefix: control characters are not allowed in a header value")
        if not 1 <= self.ml_pipeline_port <= 65535:
            raise ConfigError(f"ml_pipeline_port: {self.ml_pipeline_port} is not a TCP port")
        if not DNS_SUBDOMAIN.match(self.workload_label.split("/")[-1].lower()):
            raise ConfigError(f"workload_label: {self.workload_label!r} is not a label key")
        if self.sidecar_stop not in ("quitquitquit", "signal"):
            raise ConfigError(f"sidecar_stop: {self.sidecar_stop!r} is not 'quitquitquit' or 'signal'")
        if not 0 < self.kale_retry_max_delay_seconds <= self.kale_retry_seconds:
            raise ConfigError("kale_retry_max_delay_seconds must be > 0 and <= kale_retry_seconds")
        for image, entrypoint in self.collector_entrypoints.items():
            if not image or not entrypoint or not all(isinstance(a, str) and a for a in entrypoint):
                raise ConfigError(f"collector_entrypoints: {image!r} needs a non-empty list of strings")
        self._validate_identity()
        return self

    def _validate_identity(self) -> None:
        if self.identity_mode not in IDENTITY_MODES:
            raise ConfigError(
                f"identity_mode: {self.identity_mode!r} is not one of {', '.join(IDENTITY_MODES)}"
            )
        if not self.token_audience or any(c.isspace() or ord(c) < 0x20 for c in self.token_audience):
            raise ConfigError(f"token_audience: {self.token_audience!r} must be non-empty without spaces")
        if not MIN_TOKEN_EXPIRATION_SECONDS <= self.token_expiration_seconds <= 2**32:
            raise ConfigError(
                f"token_expiration_seconds: {self.token_expiration_seconds} is not between "
                f"{MIN_TOKEN_EXPIRATION_SECONDS} and {2**32} (the API server's bounds)"
            )
        directory = self.token_directory
        if not directory.startswith("/") or ":" in directory or ".." in directory.split("/"):
            raise ConfigError(f"token_directory: {directory!r} is not an absolute path without '..' or ':'")
        if self.token_file in ("", ".", "..") or "/" in self.token_file:
            raise ConfigError(f"token_file: {self.token_file!r} is not a file name")
        if not DNS_LABEL.match(self.token_volume):
            raise ConfigError(f"token_volume: {self.token_volume!r} is not a DNS label")
        if not ENV_VAR_NAME.match(self.token_path_env):
            raise ConfigError(f"token_path_env: {self.token_path_env!r} is not an environment variable name")


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Turn a YAML or environment value into the type of the field's default."""
    try:
        if isinstance(default, bool):
            raise TypeError("no bool settings")
        if isinstance(default, int):
            if isinstance(raw, bool):
                raise TypeError("a boolean is not a number")
            return int(raw)
        if isinstance(default, str):
            if not isinstance(raw, str | int):
                raise TypeError("expected a string")
            return str(raw)
        if isinstance(default, Mapping):
            if isinstance(raw, str):
                raw = yaml.safe_load(raw)
            if not isinstance(raw, Mapping):
                raise TypeError("expected a mapping")
            entries = {}
            for key, value in raw.items():
                if not isinstance(value, list) or not value:
                    raise TypeError(f"{key}: expected a non-empty list of strings")
                entries[str(key)] = tuple(str(v) for v in value)
            return entries
    except (TypeError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{name}: {error}") from None
    raise ConfigError(f"{name}: unsupported setting type")


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Build and validate the configuration from the optional YAML file and the environment."""
    environ = os.environ if environ is None else environ
    defaults = Config()
    known = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(Config)}
    values: dict[str, Any] = {}
    path = environ.get(CONFIG_FILE_ENV)
    if path:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{CONFIG_FILE_ENV}={path}: {error}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        for key, raw in document.items():
            if key not in known:
                raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
            values[key] = _coerce(key, raw, known[key])
    for key, default in known.items():
        env_name = ENV_PREFIX + key.upper()
        if env_name in environ:
            values[key] = _coerce(env_name, environ[env_name], default)
    unknown = sorted(
        k
        for k in environ
        if k.startswith(ENV_PREFIX) and k != CONFIG_FILE_ENV and k[len(ENV_PREFIX) :].lower() not in known
    )
    if unknown:
        raise ConfigError(f"unknown environment setting(s): {', '.join(unknown)}")
    return Config(**values).validate()
