"""The LangChain tools an llm step may offer its model, built per step run.

Read-only by default (``read_variables``, ``step_history``, ``http_fetch``); the tools
with side effects (``set_variable``, ``publish_message``) exist only when the step
says ``allowSideEffects: true``, which the save-time check enforces. ``http_fetch``
reads https URLs of the step's ``fetchHosts`` through the engine's ``HttpGateway``,
so the egress policy (no private, loopback or metadata addresses) applies too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from shared.ai.llm_config import LlmConfig
from shared.ai.services import AiEnv
from shared.engine.steps import StepContext
from shared.errors import WorkflowError

MAX_RESULT = 8_000
MAX_FETCH = 20_000


class _Names(BaseModel):
    names: list[str] | None = Field(default=None, description="Variable names; all when absent.")


class _Nothing(BaseModel):
    pass


class _Url(BaseModel):
    url: str = Field(description="An https URL on an allowed host.")


class _SetVariable(BaseModel):
    name: str = Field(description="Variable name (an identifier).")
    value: Any = Field(description="Any JSON value.")


class _Publish(BaseModel):
    topic: str = Field(description="One of the allowed topics.")
    data: Any = Field(description="The message body (JSON).")


def _json(value: Any, cap: int = MAX_RESULT) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= cap else text[: cap - 20] + "...(truncated)"


@dataclass
class ToolBox:
    """The tools of one step run, and what they changed."""

    ctx: StepContext
    env: AiEnv
    config: LlmConfig
    set_vars: dict[str, Any] = field(default_factory=dict)

    def tools(self) -> dict[str, BaseTool]:
        table: dict[str, tuple[Callable[..., Awaitable[str]], type[BaseModel]]] = {
            "read_variables": (self.read_variables, _Names),
            "step_history": (self.step_history, _Nothing),
            "http_fetch": (self.http_fetch, _Url),
            "set_variable": (self.set_variable, _SetVariable),
            "publish_message": (self.publish_message, _Publish),
        }
        from shared.ai.llm_config import TOOLS

        built: dict[str, BaseTool] = {}
        for name in self.config.tools:
            function, schema = table[name]
            built[name] = StructuredTool.from_function(
                coroutine=function, name=name, description=TOOLS[name], args_schema=schema
            )
        return built

    async def read_variables(self, names: list[str] | None = None) -> str:
        variables = self.ctx.variables
        if names:
            return _json({name: variables.get(name) for name in names})
        return _json(variables)

    async def step_history(self) -> str:
        store = self.env.executions
        if store is None:
            return _json({"error": "no step history is available here"})
        rows = []
        for run in await store.list_runs(self.ctx.execution.id):
            if run.id == self.ctx.run.id or run.step_id.startswith("$"):
                continue
            rows.append(
                {
                    "stepId": run.step_id,
                    "type": run.step_type,
                    "status": run.status.value,
                    "attempt": run.attempt,
                    "output": _json(run.output, 500) if run.output is not None else None,
                    "error": run.error.code if run.error else None,
                }
            )
        return _json(rows)

    async def http_fetch(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or host not in self.config.fetch_hosts:
            return _json({"error": f"not allowed: https URLs on {self.config.fetch_hosts} only"})
        gateway = self.env.http
        if gateway is None:
            return _json({"error": "http is not configured"})
        try:
            response = await gateway.request("GET", url, timeout=15.0)
        except WorkflowError as exc:
            return _json({"error": exc.code, "message": exc.message})
        except Exception as exc:  # network errors: the model sees them, the step goes on
            return _json({"error": type(exc).__name__, "message": str(exc)[:300]})
        body = response.content[:MAX_FETCH].decode(errors="replace")
        return _json({"status": response.status_code, "body": body}, MAX_FETCH + 200)

    async def set_variable(self, name: str, value: Any) -> str:
        if not name.isidentifier():
            return _json({"error": f"{name!r} is not a valid variable name"})
        self.set_vars[name] = value
        return _json({"ok": True, "set": name})

    async def publish_message(self, topic: str, data: Any) -> str:
        if topic not in self.config.publish_topics:
            return _json({"error": f"topic {topic!r} is not one of {self.config.publish_topics}"})
        if self.env.bus is None:
            return _json({"error": "no event bus is configured"})
        digest = hashlib.sha256(_json([topic, data]).encode()).hexdigest()[:16]
        dedup = f"{self.ctx.run.idempotency_key or self.ctx.run.id}:{digest}"
        attributes = {"executionId": self.ctx.execution.id, "stepId": self.ctx.step.id}
        message_id = await self.env.bus.publish(topic, data, attributes, dedup)
        return _json({"ok": True, "messageId": message_id})
