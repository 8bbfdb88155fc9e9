"""Run an instantiated template on the local engine, offline: the demo service answers
its http steps and the gallery's recordings stand in for the model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.dev.demo_service import DemoServer
from shared.models import StepRun, WorkflowExecution
from shared.settings import Settings
from shared.templates import RECORDINGS, InstantiateRequest, instantiate_template


@dataclass
class Ran:
    """The finished execution, its step runs and what the demo service received."""

    execution: WorkflowExecution
    runs: list[StepRun]
    notifications: list[dict[str, Any]]

    def steps(self, step_id: str) -> list[StepRun]:
        return [run for run in self.runs if run.step_id == step_id]


def local_settings(db: Path) -> Settings:
    """Local mode on ``db``: http steps may call the demo service on 127.0.0.1, llm steps
    replay the gallery's recordings (no model is configured)."""
    return Settings.local_mode(
        str(db), http_allowed_hosts=["127.0.0.1"], ai_recordings_dir=str(RECORDINGS)
    )


async def _finished(runtime: LocalRuntime, execution_id: str, timeout: float) -> WorkflowExecution:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        execution = await runtime.app.get_execution(execution_id)
        if execution.status.terminal:
            return execution
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout} s")


async def run_template(
    db: Path,
    template_id: str,
    parameters: dict[str, Any],
    *,
    events: dict[str, dict[str, Any]] | None = None,
    timeout: float = 30,
) -> Ran:
    """Instantiate and save ``template_id``, start it and follow it to its end;
    ``events`` are sent to the execution as soon as it waits."""
    async with DemoServer() as demo, build_local(local_settings(db)) as runtime:
        made = await instantiate_template(
            runtime.app, InstantiateRequest(template_id, parameters, save=True)
        )
        assert made.workflow is not None
        started = await runtime.app.start_execution(
            StartRequest(made.workflow.id, {"demoUrl": demo.url})
        )
        for name, payload in (events or {}).items():
            await runtime.app.send_event(started.id, name, payload)
        execution = await _finished(runtime, started.id, timeout)
        runs = await runtime.app.step_history(started.id)
        state = demo.app.state.demo
        return Ran(execution, runs, list(state.notifications))
