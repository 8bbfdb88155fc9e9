"""Fixtures of the cloud adapter suites: the Pub/Sub and Cloud Tasks emulators."""

from __future__ import annotations

from emulators_gcp import (  # noqa: F401  (fixtures and the not-run report hook)
    pubsub_emulator_host,
    pubsub_project,
    pytest_unconfigure,
    tasks_emulator_host,
)
