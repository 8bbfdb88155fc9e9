"""The trigger manager and secret resolver the HTTP edges use, installed at startup.

The dev server (and, in the cloud, the ``create`` function's bootstrap) installs a
``TriggerManager`` with ``use_trigger_manager``; the REST and GraphQL handlers call
``await workflow_changed(workflow_id, tenant)`` after every workflow change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared.app.local_triggers import LocalTriggerBackend
from shared.app.secrets import SecretResolver, default_secret_resolver
from shared.app.trigger_manager import ReconcileReport, TriggerManager
from shared.bootstrap import LocalRuntime

__all__ = [
    "build_local_trigger_manager",
    "get_secret_resolver",
    "get_trigger_manager",
    "use_secret_resolver",
    "use_trigger_manager",
    "workflow_changed",
]

log = logging.getLogger(__name__)

_manager: TriggerManager | None = None
_secrets: SecretResolver | None = None


def build_local_trigger_manager(
    runtime: LocalRuntime, tenants: Iterable[str] = (), *, max_sleep: float = 10.0
) -> TriggerManager:
    """Local cron + bus subscriptions over the runtime; ``await manager.start()`` next."""
    backend = LocalTriggerBackend(
        runtime.app, runtime.bus, runtime.engine.clock, max_sleep=max_sleep
    )
    return TriggerManager(runtime.app, backend, tenants)


def use_trigger_manager(manager: TriggerManager | None) -> None:
    """Install the manager ``workflow_changed`` notifies; ``None`` uninstalls it."""
    global _manager
    _manager = manager


def get_trigger_manager() -> TriggerManager | None:
    return _manager


def use_secret_resolver(resolver: SecretResolver | None) -> None:
    """Install the resolver of webhook secrets; ``None`` restores ``env:`` only."""
    global _secrets
    _secrets = resolver


def get_secret_resolver() -> SecretResolver:
    global _secrets
    if _secrets is None:
        _secrets = default_secret_resolver()
    return _secrets


async def workflow_changed(workflow_id: str, tenant: str | None = None) -> ReconcileReport | None:
    """Reconcile the triggers of one workflow after it was created, updated, activated,
    deactivated or deleted. A no-op when no manager is installed.

    Never raises: the workflow change is already committed, and failing the API call
    would suggest it was not. A failure is logged; the next ``reconcile_all`` (at
    startup) repairs it.
    """
    if _manager is None:
        return None
    try:
        return await _manager.on_workflow_changed(workflow_id, tenant)
    except Exception:
        log.exception("reconciling the triggers of workflow %s failed", workflow_id)
        return None
