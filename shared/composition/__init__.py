"""The composition root: picks adapters from settings and wires the app, once.

- ``runtime``: ``Runtime``, the base both backends share (ports, engine, app, one
  lifecycle, ``event_feed()``), and ``wire_engine``.
- ``local``: ``LocalRuntime`` and ``build_local`` (SQLite or memory, in-process queue
  and bus).
- ``gcp``: ``GcpRuntime``, ``build_gcp``, ``build_scheduler_backend`` and
  ``keep_paused_if_inactive`` (Firestore, Cloud Tasks, Pub/Sub, Cloud Scheduler; the
  Google client libraries are imported only when a builder is called).
- ``registry``: ``build_registry``, the step types every runtime starts from.

Imports run one way: ``local`` and ``gcp`` use ``runtime`` and ``registry``; this
module uses them all. Nothing connects at import time.
"""

from __future__ import annotations

from shared.composition.gcp import (
    GcpRuntime,
    build_gcp,
    build_scheduler_backend,
    keep_paused_if_inactive,
)
from shared.composition.local import LocalRuntime, build_local
from shared.composition.registry import build_registry
from shared.composition.runtime import Runtime
from shared.settings import Settings

__all__ = [
    "GcpRuntime",
    "LocalRuntime",
    "Runtime",
    "build_gcp",
    "build_local",
    "build_registry",
    "build_runtime",
    "build_scheduler_backend",
    "keep_paused_if_inactive",
]


def build_runtime(settings: Settings | None = None) -> Runtime:
    """The runtime ``settings.backend`` names: ``build_local`` or ``build_gcp``."""
    settings = settings or Settings.from_env()
    if settings.backend == "gcp":
        return build_gcp(settings)
    return build_local(settings)
