"""Temporary re-export of ``shared.composition`` for modules not yet switched over.

Goes away once every importer uses ``shared.composition``; add nothing here.
"""

from shared.composition import GcpRuntime as GcpRuntime
from shared.composition import LocalRuntime as LocalRuntime
from shared.composition import Runtime as Runtime
from shared.composition import build_gcp as build_gcp
from shared.composition import build_local as build_local
from shared.composition import build_registry as build_registry
from shared.composition import build_runtime as build_runtime
from shared.composition import build_scheduler_backend as build_scheduler_backend
from shared.composition import keep_paused_if_inactive as keep_paused_if_inactive
