"""``llm``: a model call with a prompt template, tools, structured output and memory.

Every model turn is recorded on the step run before the step commits, so a redelivery,
a retry or a resume replays it instead of paying again; with no model configured the
step replays the workflow's recording file and says so (``"source": "recording"``).
Token and cost accounting covers the step and the execution; a budget that runs out
fails the step (BUDGET_EXCEEDED) or pauses the execution (``onExceeded: pause``):
resuming it approves going over the budget for this step run.

The step type itself is light: checking a config needs no LangChain. The run
(``shared.ai.llm_run``, LangChain messages and a LangGraph loop) loads on the first
llm step a process runs, so a function instance that never runs one does not pay
for those imports at its cold start.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from shared.ai.llm_config import LlmConfig, check_llm
from shared.ai.services import AiServices
from shared.engine.steps import Outcome, StepContext, StepType
from shared.errors import Issue
from shared.models import WorkflowStep
from shared.settings import Settings


def process_settings() -> Settings:
    """The settings save-time checks use when the step type was given none: the
    process's, read again when its ``WFE_AI_*`` variables change."""
    ai = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("WFE_AI_")))
    return _settings_for(ai)


@lru_cache(maxsize=8)
def _settings_for(ai: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env()


class LlmStep(StepType):
    type_name = "llm"
    config_model = LlmConfig

    def __init__(self, services: AiServices | None = None) -> None:
        self.services = services or AiServices()

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        settings = self.services.deps.settings or process_settings()
        fallback = step.on_error.fallback_step is not None
        return check_llm(config, f"{path}/config", settings, has_fallback=fallback)

    async def execute(self, ctx: StepContext) -> Outcome:
        from shared.ai.llm_run import LlmRunner  # LangChain loads here, lazily

        return await LlmRunner(self.services).execute(ctx)

    def resume(self, ctx: StepContext, payload: Any) -> Outcome:
        """A person's decision on an answer its guardrails escalated."""
        from shared.ai.guardrails_run import decide

        return decide(ctx, payload)
