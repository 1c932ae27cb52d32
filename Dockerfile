# One image for every oasis-keda component; the command picks the component:
#   oasis-keda scaler serve --port 6000     the KEDA external scaler
#   oasis-keda controller serve             the task controller
#   oasis-keda worker serve --model ID      a model's Celery worker
#   oasis-keda api serve --port 8000        the REST API
# Model data is NOT in the image: it mounts from a volume (/models, see manifests/).
#
#   docker build -t oasis-keda:dev .        (minikube: minikube image build -t oasis-keda:dev .)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (a layer that survives source edits), then the project itself.
COPY pyproject.toml README.md ./
RUN mkdir -p oasis_keda scaler task_controller worker \
    && touch oasis_keda/__init__.py scaler/__init__.py task_controller/__init__.py worker/__init__.py \
    && pip install . \
    && pip uninstall -y oasis-keda
COPY oasis_keda ./oasis_keda
COPY scaler ./scaler
COPY task_controller ./task_controller
COPY worker ./worker
COPY protos ./protos
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE}
# Non-root, numeric (runAsNonRoot can check it); the manifests use the same ids.
RUN groupadd --system --gid 10001 oasis \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home oasis
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/opt/oasis-keda/numba-cache \
    OASIS_KEDA_STORAGE_DIR=/data

# Warm the numba cache at build time: the oasislmf pipeline tools (gulmc, fmpy, summarypy,
# ...) compile on first use, about 30 s each (docs/BENCHMARKS.md). `oasis-keda model warm`
# compiles every tool the built-in synthetic model's pipeline runs (every ORD output), each
# in its own process, as many at once as the build has cores. Worker pods copy the cache
# into a writable emptyDir at start (their root filesystem is read-only). The cache is
# built by the same image and paths that use it, hence here and not on the model volume.
RUN mkdir -p /opt/oasis-keda/numba-cache \
    && oasis-keda model synth --dir /tmp/warm-model \
    && oasis-keda model warm --model-dir /tmp/warm-model \
    && rm -rf /tmp/warm-model /tmp/matplotlib \
    && chmod -R a+rX /opt/oasis-keda/numba-cache

USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["oasis-keda"]
CMD ["--help"]
