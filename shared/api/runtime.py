"""The process-wide runtime the HTTP edges use, built lazily on first use.

Nothing connects at import time: the first request builds the runtime from the
settings (``WFE_*`` variables) in the running event loop and starts it. The dev
server and tests install their own with ``use_runtime``.
"""

from __future__ import annotations

import asyncio

from shared.api.auth import Authenticator, LocalDevAuthenticator, authenticator_from_settings
from shared.app import WorkflowApp
from shared.bootstrap import Runtime, build_runtime
from shared.settings import Settings

_runtime: Runtime | None = None
_authenticator: Authenticator = LocalDevAuthenticator()
_lock: asyncio.Lock | None = None


def use_runtime(runtime: Runtime | None, authenticator: Authenticator | None = None) -> None:
    """Install the runtime (and authenticator) the edges use; ``None`` resets."""
    global _runtime, _authenticator
    _runtime = runtime
    _authenticator = authenticator or LocalDevAuthenticator()


async def get_runtime() -> Runtime:
    """The installed runtime, or one built from the environment and started now."""
    global _runtime, _lock
    if _runtime is not None:
        return _runtime
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _runtime is None:
            settings = Settings.from_env()
            runtime = build_runtime(settings)
            await runtime.start()
            _runtime = runtime
            global _authenticator
            _authenticator = authenticator_from_settings(settings.api_keys, settings.api_key_salt)
    return _runtime


def get_authenticator() -> Authenticator:
    return _authenticator


async def app_for(tenant: str) -> WorkflowApp:
    """The use cases scoped to one tenant."""
    runtime = await get_runtime()
    return runtime.app.for_tenant(tenant)
