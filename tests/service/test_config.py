from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Config, ConfigError, load


def test_defaults_are_a_stock_kubeflow_install() -> None:
    config = load({})
    assert config.kubeflow_namespace == "kubeflow"
    assert config.service_account == "default-editor"
    assert config.userid_header == "kubeflow-userid"
    assert config.userid_prefix == ""
    assert config.ml_pipeline_host == "ml-pipeline.kubeflow.svc.cluster.local"
    assert config.ml_pipeline_port == 8888
    assert config.principal("a") == "cluster.local/ns/a/sa/default-editor"


def test_file_then_environment(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("kubeflow_namespace: kf\nml_pipeline_port: 9000\nuserid_prefix: 'accounts.google.com:'\n")
    config = load({"KFEXT_CONFIG_FILE": str(file), "KFEXT_ML_PIPELINE_PORT": "9100"})
    assert config.kubeflow_namespace == "kf"
    assert config.ml_pipeline_port == 9100
    assert config.userid("u@x") == "accounts.google.com:u@x"


def test_collector_entrypoints_from_yaml_environment() -> None:
    config = load({"KFEXT_COLLECTOR_ENTRYPOINTS": "{my-collector: [/bin/collect, --fast]}"})
    assert config.collector_entrypoints == {"my-collector": ("/bin/collect", "--fast")}


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"KFEXT_KUBEFLOW_NAMESPACE": "Kube_Flow"}, "kubeflow_namespace"),
        ({"KFEXT_ML_PIPELINE_PORT": "eighty"}, "KFEXT_ML_PIPELINE_PORT"),
        ({"KFEXT_ML_PIPELINE_PORT": "70000"}, "ml_pipeline_port"),
        ({"KFEXT_USERID_HEADER": "Bad Header"}, "userid_header"),
        ({"KFEXT_USERID_PREFIX": "a\nb"}, "userid_prefix"),
        ({"KFEXT_SIDECAR_STOP": "kill"}, "sidecar_stop"),
        ({"KFEXT_KALE_RETRY_MAX_DELAY_SECONDS": "0"}, "kale_retry_max_delay_seconds"),
        ({"KFEXT_COLLECTOR_ENTRYPOINTS": "[a]"}, "KFEXT_COLLECTOR_ENTRYPOINTS"),
        ({"KFEXT_COLLECTOR_ENTRYPOINTS": "{a: []}"}, "KFEXT_COLLECTOR_ENTRYPOINTS"),
        ({"KFEXT_NAMESPACE": "kubeflow"}, "KFEXT_NAMESPACE"),
    ],
)
def test_bad_settings_are_named_in_the_error(environ: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load(environ)


def test_bad_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        load({"KFEXT_CONFIG_FILE": str(tmp_path / "nope.yaml")})
    (tmp_path / "c.yaml").write_text("kubeflow_namspace: kf\n")
    with pytest.raises(ConfigError, match="unknown setting 'kubeflow_namspace'"):
        load({"KFEXT_CONFIG_FILE": str(tmp_path / "c.yaml")})
    (tmp_path / "d.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load({"KFEXT_CONFIG_FILE": str(tmp_path / "d.yaml")})


def test_shipped_config_file_is_valid_and_means_the_defaults() -> None:
    shipped = Path(__file__).resolve().parents[2] / "metacontroller" / "base" / "config.yaml"
    assert load({"KFEXT_CONFIG_FILE": str(shipped)}) == Config()


def test_identity_defaults_are_what_kubeflow_documents() -> None:
    config = load({})
    assert config.identity_mode == "header"
    assert config.token_audience == "pipelines.kubeflow.org"
    assert config.token_expiration_seconds == 7200
    assert config.token_path == "/var/run/secrets/kubeflow/pipelines/token"
    assert config.token_path_env == "KF_PIPELINES_SA_TOKEN_PATH"


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"KFEXT_IDENTITY_MODE": "jwt"}, "identity_mode"),
        ({"KFEXT_TOKEN_EXPIRATION_SECONDS": "599"}, "token_expiration_seconds"),
        ({"KFEXT_TOKEN_DIRECTORY": "var/run"}, "token_directory"),
        ({"KFEXT_TOKEN_DIRECTORY": "/var/../etc"}, "token_directory"),
        ({"KFEXT_TOKEN_FILE": "a/token"}, "token_file"),
        ({"KFEXT_TOKEN_VOLUME": "Token_Volume"}, "token_volume"),
        ({"KFEXT_TOKEN_PATH_ENV": "KF-PATH"}, "token_path_env"),
        ({"KFEXT_TOKEN_AUDIENCE": "two words"}, "token_audience"),
    ],
)
def test_bad_identity_settings_are_named(environ: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(environ)
