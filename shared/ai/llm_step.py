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

from typing import Any

from shared.ai.llm_config import LlmConfig, check_llm
from shared.ai.services import AiServices
from shared.engine.steps import Outcome, StepContext, StepType
from shared.errors import Issue
from shared.models import WorkflowStep


class LlmStep(StepType):
    type_name = "llm"
    config_model = LlmConfig

    def __init__(self, services: AiServices | None = None) -> None:
        self.services = services or AiServices()

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        return check_llm(config, f"{path}/config")

    async def execute(self, ctx: StepContext) -> Outcome:
        from shared.ai.llm_run import LlmRunner  # LangChain loads here, lazily

        return await LlmRunner(self.services).execute(ctx)
