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
    """HTTP port of the ml-pipeline API (8887 is gRPC and is not patched)."""
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
        return self


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
