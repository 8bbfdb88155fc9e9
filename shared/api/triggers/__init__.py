"""The trigger-handler edge: Pub/Sub, Cloud Scheduler and webhook requests, and the
wiring of the trigger manager (``workflow_changed``) and the webhook secret resolver."""

from shared.api.triggers.routes import handle_trigger_request
from shared.api.triggers.wiring import (
    build_local_trigger_manager,
    get_secret_resolver,
    get_trigger_manager,
    use_secret_resolver,
    use_trigger_manager,
    workflow_changed,
)

__all__ = [
    "build_local_trigger_manager",
    "get_secret_resolver",
    "get_trigger_manager",
    "handle_trigger_request",
    "use_secret_resolver",
    "use_trigger_manager",
    "workflow_changed",
]
