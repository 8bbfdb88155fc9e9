"""The trigger-handler edge: Pub/Sub, Cloud Scheduler and webhook requests become
executions (``create_trigger_app``)."""

from shared.api.triggers.routes import create_trigger_app

__all__ = ["create_trigger_app"]
