"""The composition root of the HTTP edges: settings -> runtime, authenticator, secret
resolver, trigger manager -> ``Edge`` -> the app of one function (or of all four).

Everything here is built eagerly, before any app serves a request, and nothing here
connects: the runtime's adapters connect when the edge starts (the ASGI lifespan).
A setting that cannot work (an API key entry that does not parse, gcp mode without
a project) fails here, at startup, not on some request later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal

from starlette.types import ASGIApp

from shared.api.auth import Authenticator, authenticator_from_settings, with_registry
from shared.api.edge import Edge
from shared.api.identity import InternalIdentity, identity_from_settings
from shared.api.rest import create_management_app
from shared.api.rest._audit import with_auth_failure_audit
from shared.api.stream_tokens import StreamTokens, stream_token_key
from shared.api.streams import create_stream_app
from shared.api.tasks import create_tasks_app
from shared.api.triggers import create_trigger_app
from shared.app.local_triggers import LocalTriggerBackend
from shared.app.secrets import default_secret_resolver
from shared.app.trigger_manager import TriggerManager
from shared.composition import build_runtime
from shared.composition.gcp import GcpRuntime, build_scheduler_backend
from shared.composition.local import LocalRuntime
from shared.composition.runtime import Runtime
from shared.errors import InputInvalid
from shared.observability import configure_logging, configure_tracing
from shared.settings import Settings

__all__ = [
    "FUNCTION_APPS",
    "Service",
    "build_edge",
    "build_function_app",
    "build_local_trigger_manager",
    "configure_observability",
    "require_authentication",
]

log = logging.getLogger(__name__)

Service = Literal["create", "execute-step", "trigger-handler", "status-stream"]

FUNCTION_APPS: dict[str, Callable[[Edge], ASGIApp]] = {
    "create": lambda edge: create_management_app(
        edge, allowed_origins=edge.settings.allowed_origins
    ),
    "execute-step": lambda edge: with_auth_failure_audit(create_tasks_app(edge)),
    "trigger-handler": lambda edge: with_auth_failure_audit(create_trigger_app(edge)),
    "status-stream": lambda edge: create_stream_app(
        edge, allowed_origins=edge.settings.allowed_origins
    ),
}
"""The app each function serves, by function name."""


PUBLIC_FUNCTIONS = frozenset({"create", "status-stream"})
"""The functions end users call (the others sit behind Cloud Run IAM only)."""


def require_authentication(settings: Settings) -> None:
    """In the cloud, a public function without credentials to check does not start.

    Local mode is development mode (``X-Tenant`` picks the tenant, no credentials);
    ``WFE_ALLOW_UNAUTHENTICATED=true`` is the one way to run gcp mode like that.
    """
    if settings.backend != "gcp" or settings.api_keys or settings.id_token_audience:
        return
    if not settings.allow_unauthenticated:
        raise InputInvalid(
            "backend=gcp serves end users only with credentials: set WFE_API_KEYS or "
            "WFE_ID_TOKEN_AUDIENCE (or WFE_ALLOW_UNAUTHENTICATED=true for emulators and "
            "throwaway projects)",
            code="INVALID_SETTINGS",
        )
    log.warning(
        "WFE_ALLOW_UNAUTHENTICATED=true: anyone who reaches this service is an owner of "
        "any tenant; never run a real deployment like this"
    )


def configure_observability(service: str, settings: Settings) -> None:
    """JSON log lines and the tracer of this process (the same for every entry point)."""
    project = settings.gcp.project
    configure_logging(service, level=settings.log_level, project=project or None)
    configure_tracing(settings.trace_exporter, service, project=project)


def build_local_trigger_manager(
    runtime: LocalRuntime, tenants: Iterable[str] = (), *, max_sleep: float = 10.0
) -> TriggerManager:
    """Local cron + bus subscriptions over the runtime; ``await manager.start()`` next."""
    backend = LocalTriggerBackend(
        runtime.app, runtime.bus, runtime.engine.clock, max_sleep=max_sleep
    )
    return TriggerManager(runtime.app, backend, tenants)


def build_edge(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    authenticator: Authenticator | None = None,
    triggers: TriggerManager | None = None,
    identity: InternalIdentity | None = None,
) -> Edge:
    """The edge of one process, from its settings (``runtime``, ``authenticator`` and
    ``identity`` replace what the settings would build: tests, the dev server). A
    ``runtime`` given here is started and stopped by its owner, not by the edge.

    With a tenant registry (every runtime ``wire_engine`` builds with a limiter), the
    registry's keys are accepted before ``authenticator``, and the principals of a
    disabled tenant are refused (``RegistryAuthenticator``)."""
    owns_runtime = runtime is None
    runtime = runtime if runtime is not None else build_runtime(settings)
    if identity is None:
        identity = identity_from_settings(settings)
    if authenticator is None:
        authenticator = authenticator_from_settings(
            settings.api_keys,
            settings.api_key_salt,
            id_token_audiences=settings.id_token_audience,
            id_token_principals_entries=settings.id_token_principals,
            verifier=identity.verifier,
        )
    guard = runtime.tenant_guard
    if guard is not None:
        authenticator = with_registry(authenticator, guard.directory)
    return Edge(
        runtime=runtime,
        authenticator=authenticator,
        secrets=default_secret_resolver(),
        identity=identity,
        stream_tokens=StreamTokens(
            stream_token_key(settings.stream_token_key, settings.api_key_salt),
            ttl_seconds=settings.stream_token_ttl_seconds,
        ),
        triggers=triggers,
        owns_runtime=owns_runtime,
    )


def build_function_app(service: str, settings: Settings | None = None) -> ASGIApp:
    """The ASGI app of one function, with its edge built from the settings.

    In the cloud, ``create`` is where workflows change, so it keeps their Cloud
    Scheduler jobs in line (when ``WFE_TRIGGER_HANDLER_URL`` names the target).
    """
    if service not in FUNCTION_APPS:
        raise ValueError(f"no function named {service!r}; one of {sorted(FUNCTION_APPS)}")
    settings = settings if settings is not None else Settings.from_env()
    configure_observability(service, settings)
    if service in PUBLIC_FUNCTIONS:
        require_authentication(settings)
    edge = build_edge(settings)
    edge.sweep_at_start = service == "execute-step" and settings.backend == "gcp"
    runtime = edge.runtime
    cloud = settings.gcp
    if (
        service == "create"
        and isinstance(runtime, GcpRuntime)
        and cloud.scheduler_jobs
        and cloud.trigger_handler_url
    ):
        edge.triggers = TriggerManager(runtime.app, build_scheduler_backend(runtime))
        edge.start_triggers = False
    return FUNCTION_APPS[service](edge)
