# One image for both services: `kubeflow-extension serve hooks|webhook`.
# The builder resolves nothing: every dependency is pinned with hashes in requirements.lock.
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/kubeflow-extension
COPY requirements.lock ./
RUN /opt/kubeflow-extension/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY hooks ./hooks
COPY webhook ./webhook
COPY service ./service
RUN /opt/kubeflow-extension/bin/pip install --no-deps --no-build-isolation . \
 && /opt/kubeflow-extension/bin/pip uninstall --yes pip

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="kubeflow-extension" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Kubeflow multi-user support for notebooks, Kale and Katib trials behind Istio"
COPY --from=builder /opt/kubeflow-extension /opt/kubeflow-extension
ENV PATH=/opt/kubeflow-extension/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A numeric non-root user, so that `runAsNonRoot` can verify it without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["kubeflow-extension"]
CMD ["serve", "hooks"]
