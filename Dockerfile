# syntax=docker/dockerfile:1
# The changelane controller image: `changelane run`, as a non-root user, on a read-only root.
# Build: docker build -t changelane:0.1.0 .   (the Helm chart runs it; see docs/operating.md)

# Pinned by version: bump deliberately, together with the tests (tests/shipping/test_image.py).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: resolve dependencies from the committed pins into a virtualenv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/changelane
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when the pins change. Wheels only, so
# no compiler is needed here and none can leak into the image.
COPY constraints.txt ./
RUN /opt/changelane/bin/pip install --only-binary=:all: --requirement constraints.txt
COPY pyproject.toml README.md ./
COPY controller ./controller
# The runtime needs neither the installers nor kubernetes.aio, the asyncio twin of the
# client that kubernetes 37 ships (68 MB, never imported: changelane uses the threaded
# client). Dropping them keeps the venv under 200 MB (docs/image.md).
RUN /opt/changelane/bin/pip install --no-deps --constraint constraints.txt . \
    && /opt/changelane/bin/pip check \
    && rm -rf /opt/changelane/lib/python3.11/site-packages/kubernetes/aio \
    && /opt/changelane/bin/pip uninstall --yes setuptools pip

# ---- runtime: the virtualenv on a clean base, nothing else ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="changelane" \
      org.opencontainers.image.description="Autonomous change-lane deployment controller for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/changelane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/changelane /opt/changelane
# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd lookup.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["changelane", "run"]
