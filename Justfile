# Recipes for development and CI. Run `bash scripts/bootstrap.sh` once first; it installs `just` too.
set shell := ["bash", "-euo", "pipefail", "-c"]

export PATH := justfile_directory() / ".venv/bin:" + env_var("PATH")
export NO_PROXY := "127.0.0.1,localhost"

default_image := "localhost/kubeflow-extension:dev"

# List the recipes.
default:
    @just --list

# Everything CI runs, in its order: lint, the tests, Istio's translation of the hooks' objects, the image,
# and the product from that image on the local cluster.
check: lint test test-istio test-istio-legacy image-test e2e-cluster

# Unit, contract and property tests, then the end-to-end suite on the local control plane.
test *args:
    pytest {{args}}

# Istio's own code on the hooks' objects: its validating webhook, and the Envoy configuration pilot
# generates for the calling Pods and for ml-pipeline (Go, e2e/istio). The first build of istio.io/istio
# takes about 11 min on 2 cores; Go's build cache (outside the repository) keeps it. `just test-istio -v`
# prints the generated virtual hosts and RBAC filters.
test-istio *args:
    cd e2e/istio-cases && GOFLAGS=-mod=mod GOTOOLCHAIN=local go test -count=1 .
    cd e2e/istio && GOFLAGS=-mod=mod GOTOOLCHAIN=local go test -count=1 -timeout=20m {{args}} .

# The same for the legacy-istio overlay with Istio 1.5.10's code (Go, e2e/istio-legacy): validation, the
# header on the Pods' routes, ml-pipeline's RBAC next to Kubeflow 1.1/1.2's own objects, and mutations of
# the hooks' objects that must fail. The first build takes about a minute and a half on 2 cores.
test-istio-legacy *args:
    cd e2e/istio-legacy && GOFLAGS=-mod=mod GOTOOLCHAIN=local go test -count=1 -timeout=20m {{args}} .

# Only the fast tests (no control plane).
test-unit *args:
    pytest tests {{args}}

# ruff (lint and format), mypy, and the release workflow (actionlint, built from Go once).
lint: lint-image
    shellcheck -x .ci/run scripts/*.sh e2e/*.sh e2e/kind/*.sh bench/*.sh
    "$(bash scripts/build-actionlint.sh)" -shellcheck "$(command -v shellcheck)" .github/workflows/*.yaml
    ruff check .
    ruff format --check .
    mypy

# The Dockerfile's linter, and a check that both locks still match pyproject.toml.
lint-image:
    hadolint Dockerfile
    check=$(mktemp -d) && trap 'rm -rf "$check"' EXIT \
      && cp requirements.lock requirements-build.lock "$check/" \
      && just _compile-locks "$check" && diff -u requirements.lock "$check/requirements.lock" \
      && diff -u requirements-build.lock "$check/requirements-build.lock"

# Pin the image's runtime dependencies and its build backend, with hashes (keeps pins that still fit).
lock:
    just _compile-locks .

# requirements.lock from [project] dependencies; requirements-build.lock from [build-system] requires.
_compile-locks dir:
    uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
      --python-platform x86_64-manylinux_2_28 --quiet --custom-compile-command "just lock" \
      -o {{dir}}/requirements.lock
    python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
      | uv pip compile - --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
      --quiet --custom-compile-command "just lock" -o {{dir}}/requirements-build.lock

# Build the image from the Dockerfile with buildah (no Docker daemon, no registry); on a debootstrap
# stand-in for python:3.11-slim-bookworm unless that image is present. Prints its layers.
image tag=default_image:
    bash scripts/build-image.sh {{tag}}

# Build the image, test it as its Deployments run it, then the demo with both services from it.
image-test tag=default_image: (image tag)
    KUBEFLOW_EXTENSION_IMAGE={{tag}} pytest e2e/image
    python -m e2e.demo --image {{tag}}

# Rewrite the code in the project's format.
fmt:
    ruff format .
    ruff check --fix .

# Build etcd, kube-apiserver, kube-controller-manager, Metacontroller, the node's and Katib's programs and
# the full BusyBox of the node trials (cached; only what is missing).
build-control-plane:
    bash e2e/build-control-plane.sh all

# Pods on a real node: the local control plane plus containerd, a kubelet and kube-scheduler, running
# trial Pods to completion (root; packages: e2e/install-node-packages.sh, binaries: build-control-plane).
e2e-node *args:
    pytest -m node e2e {{args}}

# The product as users deploy it, on a one-node cluster (Pod network, kube-proxy, CoreDNS, metrics-server):
# the webhook, the hooks and Metacontroller in Pods from the image, rolled, killed, drained, their
# certificate renewed and autoscaled under load, with refusals counted by the load and by kube-apiserver
# (root; `just image` first; binaries: build-control-plane). `e2e-cluster-all` runs them both ways.
# Every scenario with kube-apiserver routing to endpoints, the rollout also via ClusterIP (CI's, ~15 min).
e2e-cluster *args:
    E2E_ROUTING=endpoint pytest -m cluster e2e/scenarios {{args}}
    E2E_ROUTING=clusterip pytest -m cluster e2e/scenarios/test_webhook_rollout.py {{args}}

# Every cluster scenario under both routing modes (`E2E_ROUTING=endpoint` or `clusterip` limits it).
e2e-cluster-all *args:
    pytest -m cluster e2e/scenarios {{args}}

# Regenerate tests/webhook/fixtures/katib-v<KATIB_VERSION>/: trial Pods from Katib's own Pod webhook.
katib-fixtures:
    bash e2e/build-control-plane.sh katib
    source e2e/versions.env && out=tests/webhook/fixtures/katib-v$KATIB_VERSION && rm -rf "$out" && \
      "${KUBEFLOW_EXTENSION_CACHE:-$HOME/.cache/kubeflow-extension}/katib-$KATIB_VERSION/bin/trial-pods" "$out"

# End-to-end on kind with Istio, Metacontroller and Katib (needs Docker and internet; not run in CI).
e2e:
    bash e2e/kind/run.sh

# Benchmarks side by side (webhook against a bare ceiling, hooks, pod creation, memory); writes
# bench/RESULTS.md. `just bench --quick`, `just bench --only webhook`, `just bench --only memory --minutes 10`,
# `just bench --only instructions` (callgrind), `just bench --only explain` (kube-apiserver's side of a patch).
# `just bench --only pods --with-kyverno` adds Kyverno doing the same job (built on first use, not in CI).
# `python -m bench.revisions REV`: the webhook at REV against this tree's and the ceiling, in one run.
bench *args:
    python -m bench {{args}}

# Serve the Metacontroller hooks on plain HTTP (Metacontroller calls them in-cluster).
serve-hooks port="8080":
    kubeflow-extension serve hooks --host 127.0.0.1 --port {{port}} --log-format text

# The main job on a local control plane (no Docker): a profile namespace, trial Job and Pods, a notebook;
# reports what the hooks created and what the webhook changed. `just demo --keep` leaves it running.
demo *args:
    python -m e2e.demo {{args}}

# Preview the Istio objects for the example profile namespace.
preview:
    kubeflow-extension sync --namespace examples/namespace.yaml --profile examples/profile.yaml

# Render every shipped manifest.
manifests:
    kubectl kustomize metacontroller/
    kubectl kustomize metacontroller/legacy-istio/
