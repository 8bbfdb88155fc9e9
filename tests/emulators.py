"""The emulator helpers the suites import as ``emulators``: they live in
``shared/dev/emulators.py`` (``make dev-emulators`` uses them too) and are re-exported here.
The pytest fixtures are in ``emulators_gcp.py``."""

from __future__ import annotations

from shared.dev.emulators import (
    Emulator,
    GrpcEmulator,
    Unavailable,
    clear_firestore_project,
    find_firestore,
    find_pubsub,
    firestore_emulator,
    free_port,
    sdk_root,
)

_sdk_root = sdk_root

__all__ = [
    "Emulator",
    "GrpcEmulator",
    "Unavailable",
    "clear_firestore_project",
    "find_firestore",
    "find_pubsub",
    "firestore_emulator",
    "free_port",
]
