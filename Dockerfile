# One image for both services: `kubeflow-extension serve hooks|webhook`.
# The builder resolves nothing: the build backend is pinned with hashes in requirements-build.lock and every
# runtime dependency in requirements.lock. Build tools stay in the builder: the service's venv is made
# without pip, and the build venv's pip installs into it (`--python`).
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/build \
 && python -m venv --without-pip /opt/kubeflow-extension
COPY requirements-build.lock requirements.lock ./
RUN /opt/build/bin/pip install --require-hashes --only-binary=:all: -r requirements-build.lock \
 && /opt/build/bin/pip --python /opt/kubeflow-extension/bin/python install \
      --require-hashes --only-binary=:all: -r requirements.lock
# What the services never import: the kubernetes client's asyncio twin (`kubernetes.aio`, half the package),
# the aiohttp stack only it uses, and the client's own test modules. The client the webhook uses
# (`kubernetes.client`, `kubernetes.config`) stays.
RUN site=/opt/kubeflow-extension/lib/python3.11/site-packages \
 && rm -rf "$site/kubernetes/aio" \
 && /opt/build/bin/pip --python /opt/kubeflow-extension/bin/python uninstall --yes \
      aiohttp aiohttp-retry aiohappyeyeballs aiosignal attrs frozenlist multidict propcache yarl \
 && find "$site/kubernetes" -name '*_test.py' -delete \
 && find "$site/kubernetes" -name '*_test.cpython-*.pyc' -delete
COPY pyproject.toml README.md LICENSE ./
COPY hooks ./hooks
COPY webhook ./webhook
COPY service ./service
COPY doctor ./doctor
COPY kubeflow_extension ./kubeflow_extension
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /src/dist . \
 && /opt/build/bin/pip --python /opt/kubeflow-extension/bin/python install --no-deps /src/dist/*.whl

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="kubeflow-extension" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Kubeflow multi-user support for notebooks, Kale and Katib trials behind Istio"
# The base's own pip, setuptools and wheel: build tools nothing here runs, with CVEs of their own.
RUN for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))'); do \
      rm -rf "$site"/pip "$site"/pip-* "$site"/setuptools "$site"/setuptools-* "$site"/_distutils_hack \
             "$site"/distutils-precedence.pth "$site"/pkg_resources "$site"/wheel "$site"/wheel-*; \
    done \
 && for tool in pip pip3 pip3.11 wheel; do rm -f "/usr/local/bin/$tool" "/usr/bin/$tool"; done
COPY --from=builder /opt/kubeflow-extension /opt/kubeflow-extension
ENV PATH=/opt/kubeflow-extension/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A numeric non-root user, so that `runAsNonRoot` can verify it without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["kubeflow-extension"]
CMD ["serve", "hooks"]
