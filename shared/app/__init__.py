"""Use cases: the only entry to the core for the functions and the CLI."""

from shared.app.service import WorkflowApp

__all__ = ["WorkflowApp"]
