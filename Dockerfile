# One image for the four Cloud Run services; the container's argument picks the
# function (infra/docker/entrypoint.sh; Terraform sets it per service). Built and
# pushed by cloudbuild.yaml. No Docker engine runs in this repository's CI, so
# tests/infra/test_bundles.py stages the files copied below and runs the entry point
# on them instead.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PORT=8080

WORKDIR /app

# Runtime dependencies only (no test or lint tools), pinned like requirements.lock.
COPY requirements.runtime.lock /app/requirements.runtime.lock
RUN pip install --no-deps --requirement /app/requirements.runtime.lock

COPY shared /app/shared
COPY functions /app/functions
COPY infra/docker/entrypoint.sh /app/entrypoint.sh

# Compile ahead (faster cold starts), then drop root.
RUN python -m compileall -q /app/shared /app/functions \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin wfe

USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/bin/sh", "/app/entrypoint.sh"]
CMD ["create"]
