"""Real ``kubeflow-kale`` releases from PyPI, each in its own cached virtualenv outside the repository.

Kale's own dependency pins cannot all be installed today (0.6/0.7 pin ``ml-metadata`` and
``kfserving`` releases that have no wheels for a current Python), so each release is installed with
``--no-deps`` beside the kfp client it ran with and the few packages its ``kale`` package imports,
within Kale's declared ranges where those install. The environments live in
``~/.cache/kubeflow-extension/kale-<version>/`` and are reused while their recipe is unchanged.

``python -m e2e.peers.kale_peers [VERSION...]`` prepares them ahead of the tests and prints how long each
took.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CACHE = Path(os.environ.get("KFEXT_CACHE_DIR", Path.home() / ".cache" / "kubeflow-extension"))


@dataclass(frozen=True)
class KaleRelease:
    version: str
    requirements: tuple[str, ...]
    """Installed first, with their dependencies: the kfp client and what ``import kale`` needs."""


_KFP1_ERA = (
    "kfp==1.8.22",
    "kubernetes>=10,<12",
    "astor>=0.8.1",
    "networkx>=2.3,<3.0",
    "autopep8>=1.4,<1.5",
    "jinja2>=2.10,<3.0",
    "markupsafe<2.1",
    "nbformat>=5.0,<5.2",  # Kale says <5; 4.x imports base64.encodestring, gone in 3.9
    "pyflakes>=2.1.1",
)
"""What Kale 0.6 and 0.7 import, within their declared ranges, beside the kfp 1.8 their trial image had."""
RELEASES = {
    release.version: release
    for release in (
        KaleRelease("0.6.1", (*_KFP1_ERA, "graphviz>=0.13,<1.0")),
        KaleRelease("0.7.0", _KFP1_ERA),
        KaleRelease(
            "2.3.0",
            (
                "kfp[kubernetes]==2.16.0",
                "kubernetes>=30",
                "astor>=0.8.1",
                "networkx>=3.0",
                "autopep8>=2.0",
                "jinja2>=3.0",
                "nbformat>=5.10.4",
                "pyflakes>=3.0",
            ),
        ),
    )
}
NEWEST = "2.3.0"
"""The newest kubeflow-kale on PyPI (2026-09)."""


def _recipe(release: KaleRelease) -> str:
    return "\n".join([f"python {sys.version_info[0]}.{sys.version_info[1]}", *release.requirements, ""])


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", *args],
        check=True,
        timeout=1800,
    )


def kale_python(version: str) -> Path:
    """The python of a virtualenv holding kubeflow-kale ``version`` and its kfp client, created if missing.

    Safe to call from several processes at once: the first creates, the others wait for it.
    """
    release = RELEASES[version]
    home = CACHE / f"kale-{version}"
    python = home / "bin" / "python"
    ready = home / "kubeflow-extension-recipe.txt"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"kale-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file() and ready.read_text() == _recipe(release) and python.exists():
            return python
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=300)
        _pip(python, *release.requirements)
        _pip(python, "--no-deps", f"kubeflow-kale=={version}")
        imports = "import kale.common.kfputils, kale.common.katibutils"
        subprocess.run([str(python), "-c", imports], check=True, timeout=300)
        ready.write_text(_recipe(release))
    return python


GO_TEMPLATE_SOURCE = Path(__file__).parent / "katib_gotemplate" / "main.go"

_EXPERIMENT_SCRIPT = """
import json, sys
name, pipeline_id, version_id, experiment_name, api_version, parameters = json.loads(sys.argv[1])
spec = {'parameters': [{'name': p, 'parameterType': 'double', 'feasibleSpace': {'min': '0.01', 'max': '1'}}
                       for p in parameters]}
try:
    from kale.common.katibutils import construct_experiment_cr  # Kale >= 0.7
except ImportError:
    from kale.rpc.katib import _define_katib_experiment  # Kale <= 0.6: v1alpha3 only
    trial = {'image': 'gcr.io/arrikto/katib-kfp-trial:2d0f237-9f74f267', 'pipeline_id': pipeline_id,
             'experiment_name': experiment_name}
    experiment = _define_katib_experiment(name, spec, trial)
else:
    experiment = construct_experiment_cr(name, spec, pipeline_id, version_id, experiment_name, api_version)
print(json.dumps(experiment))
"""


def kale_experiment(
    version: str, api_version: str, pipeline_id: str, version_id: str, parameters: list[str]
) -> dict[str, Any]:
    """The Katib Experiment that kubeflow-kale ``version`` itself builds for a pipeline."""
    arguments = json.dumps(["random-exp", pipeline_id, version_id, "kale-exp", api_version, parameters])
    completed = subprocess.run(
        [str(kale_python(version)), "-c", _EXPERIMENT_SCRIPT, arguments],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    experiment: dict[str, Any] = json.loads(completed.stdout)
    return experiment


def katib_gotemplate() -> Path:
    """A program that renders a v1alpha3 goTemplate as Katib's controller did (Go's text/template)."""
    digest = hashlib.sha256(GO_TEMPLATE_SOURCE.read_bytes()).hexdigest()[:12]
    binary = CACHE / f"katib-gotemplate-{digest}" / "katib-gotemplate"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        subprocess.run(
            ["go", "build", "-o", str(partial), GO_TEMPLATE_SOURCE.name],
            cwd=GO_TEMPLATE_SOURCE.parent,
            env={**os.environ, "GO111MODULE": "off"},
            check=True,
            timeout=600,
        )
        partial.rename(binary)
    return binary


def trial_job(experiment: dict[str, Any], trial: str, namespace: str, assignments: dict[str, str]) -> Any:
    """The Job Katib creates for one trial of ``experiment``.

    v1alpha3 executes the goTemplate with Go's text/template (``Trial``, ``NameSpace``, ``HyperParameters``)
    and parses the YAML; v1beta1 replaces ``${trialParameters.<name>}`` in the trial spec, where each
    trial parameter references an assignment or, for ``${trialSpec.Name}``, the trial's name.
    """
    template = experiment["spec"]["trialTemplate"]
    if "goTemplate" in template:
        params = {
            "Experiment": experiment["metadata"]["name"],
            "Trial": trial,
            "NameSpace": namespace,
            "HyperParameters": [{"Name": name, "Value": value} for name, value in assignments.items()],
        }
        rendered = subprocess.run(
            [str(katib_gotemplate()), json.dumps(params)],
            input=template["goTemplate"]["rawTemplate"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return yaml.safe_load(rendered)
    spec = json.dumps(template["trialSpec"])
    for parameter in template["trialParameters"]:
        reference = parameter["reference"]
        value = trial if reference == "${trialSpec.Name}" else assignments[reference]
        spec = spec.replace("${trialParameters." + parameter["name"] + "}", value)
    return json.loads(spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", metavar="VERSION", help=f"default: {' '.join(RELEASES)}")
    versions = parser.parse_args(argv).versions or list(RELEASES)
    unknown = sorted(set(versions) - set(RELEASES))
    if unknown:
        parser.error(f"unknown Kale version(s) {unknown}; known: {list(RELEASES)}")

    def prepare(version: str) -> None:
        started = time.monotonic()
        python = kale_python(version)
        print(f"kale {version}: {python} ({time.monotonic() - started:.0f} s)", flush=True)

    # The installs wait mostly on downloads: side by side they take about as long as the longest.
    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        for done in [pool.submit(prepare, version) for version in versions]:
            done.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
