# Builder image of cloudbuild.yaml's lint, type-check, test and bundle steps: Python
# 3.11 (as in the runtime image), make, and the Google Cloud CLI with the Firestore and
# Pub/Sub emulators and the Java runtime they need; the Cloud Tasks emulator installs
# itself from PyPI into its own virtualenv when the tests start it. curl and jq: the
# README and docs commands tests/e2e/test_readme.py runs.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl gnupg jq make git openjdk-17-jre-headless \
    && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
        | gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
        > /etc/apt/sources.list.d/google-cloud-sdk.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        google-cloud-cli google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator \
    && rm -rf /var/lib/apt/lists/*

ENV CI=true
