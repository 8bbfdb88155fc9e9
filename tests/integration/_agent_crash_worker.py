"""A local-mode process running one agent step, for the agent crash test:
``start DB CALLS`` (starts the execution; the model blocks when asked for its fourth
turn, so the test can SIGKILL the process after the third tool call) or
``resume DB CALLS`` (finishes it and prints the step's output as JSON).

The fake chat model answers from the conversation alone (a tool call per turn until
it has seen three tool results, then the answer), and writes every call it receives
to the SQLite file CALLS (``calls(pid, turn)``): the count survives the kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from shared.ai import AiDependencies, StaticModelProvider, register_ai_steps
from shared.app.service import StartRequest
from shared.composition import build_local
from shared.settings import Settings
from shared.steps import default_registry

WORKFLOW = {
    "name": "agent-crash",
    "variables": {"topic": "checkpoints"},
    "steps": [
        {
            "id": "agent",
            "type": "agent",
            "config": {"prompt": "Research ${vars.topic}", "tools": ["read_variables"]},
        }
    ],
}
TOOL_TURNS = 3


class CountingChat(GenericFakeChatModel):
    """Answers from the conversation; records each call in ``calls_db``."""

    calls_db: str = ""
    block_at: int = -1
    """The turn at which the model never answers (the test kills the process there)."""

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = sum(isinstance(m, ToolMessage) for m in messages)
        with sqlite3.connect(self.calls_db) as db:
            db.execute("CREATE TABLE IF NOT EXISTS calls (pid INTEGER, turn INTEGER)")
            db.execute("INSERT INTO calls VALUES (?, ?)", (os.getpid(), turn))
        if turn == self.block_at:
            await asyncio.sleep(3600)
        if turn < TOOL_TURNS:
            call = {"name": "read_variables", "args": {}, "id": f"call-{turn + 1}"}
            message = AIMessage("", tool_calls=[call])
        else:
            message = AIMessage(f"done after {turn} tool calls")
        message.usage_metadata = {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self


def _runtime(db: str, calls: str, block_at: int) -> Any:
    model = CountingChat(messages=iter([]), calls_db=calls, block_at=block_at)
    registry = register_ai_steps(
        default_registry(), AiDependencies(models=StaticModelProvider(model))
    )
    settings = Settings.local_mode(db, workers=2, sweep_interval_seconds=0.5)
    return build_local(settings, registry=registry)


async def start(db: str, calls: str) -> None:
    async with _runtime(db, calls, block_at=TOOL_TURNS) as runtime:
        workflow = await runtime.app.create_workflow(WORKFLOW)
        await runtime.app.start_execution(StartRequest(workflow.id, {}))
        print("started", flush=True)
        await asyncio.sleep(3600)  # the test kills this process


async def resume(db: str, calls: str) -> None:
    async with _runtime(db, calls, block_at=-1) as runtime:
        for _ in range(600):
            page = await runtime.app.list_executions(limit=10)
            if page.items and all(e.status.terminal for e in page.items):
                execution = page.items[0]
                runs = await runtime.store.list_runs(execution.id)
                output = [r.output for r in runs if r.step_id == "agent"][-1]
                print(json.dumps({"status": execution.status.value, "output": output}))
                return
            await asyncio.sleep(0.1)
    raise SystemExit("the execution did not finish")


if __name__ == "__main__":
    command, db_path, calls_path = sys.argv[1:4]
    asyncio.run((start if command == "start" else resume)(db_path, calls_path))
