"""Session-wide test fixtures: the Google emulators for tests marked ``emulator``
(Firestore, Pub/Sub, Cloud Tasks; see ``emulators_gcp.py``).

When an emulator is not installed here (no gcloud, component or java), its tests are
skipped and the run ends with one loud ``EMULATOR SUITES NOT RUN`` line. When it is
installed but fails to start, its tests fail under ``CI=true`` (never a quiet skip)
and are skipped loudly elsewhere.
"""

from __future__ import annotations

from emulators_gcp import (  # noqa: F401  (fixtures and the not-run report hook)
    emulators_installed,
    firestore_emulator_host,
    firestore_project,
    pubsub_emulator_host,
    pubsub_project,
    pytest_unconfigure,
    tasks_emulator_host,
)

pytest_plugins = ["edge_fixtures"]
"""The runtime, edge and in-process app fixtures of the HTTP edge tests."""
