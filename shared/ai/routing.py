"""The router of one decision step run: AI nodes ask the model, history nodes (and AI
fallbacks) ask the history, and every choice is explained in the decision's path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.ai.accounting import ModelUnpriced, Usage, execution_usage, require_price, turn_usage
from shared.ai.choice import Verdict, ask
from shared.ai.decision_config import HISTORY, AiNode, HistoryNode
from shared.ai.history import HistoryChoice, HistoryOptions, choose, seeded_rng
from shared.ai.llm_config import resolve_model
from shared.ai.models import ModelError
from shared.ai.services import AiEnv
from shared.ai.stats import ExecutionSummary, arm_stats, summaries
from shared.engine.steps import StepContext

NO_MODEL = "no model is configured (WFE_AI_PROVIDER=none): the offline default"


@dataclass
class StepRouter:
    """Implements ``decision_graph.Router`` for one step run."""

    env: AiEnv
    ctx: StepContext
    options: HistoryOptions
    usage: Usage = field(default_factory=Usage)
    _history: list[ExecutionSummary] | None = None
    _recorded: dict[str, Any] | None = None

    async def ai(self, node: AiNode, prompt: str) -> dict[str, Any]:
        recorded = (await self._replayed()).get(f"ai:{node.id}")
        if isinstance(recorded, dict) and recorded.get("label") in node.branches:
            self.usage = self.usage.add(Usage.from_dict(recorded.get("usage")))
            return {**recorded, "replayed": True}
        spec = resolve_model(node.model, self.env.settings)  # aliases too
        entry: dict[str, Any] = {"node": node.id, "type": "ai"}
        verdict, live = await self._ask(node, prompt, spec)
        if live:
            entry["model"] = spec.model
            used = turn_usage(verdict.usage, spec.model, self.env.settings.ai.prices, live=True)
            self.usage = self.usage.add(used)
            entry["usage"] = used.to_dict()
        if verdict.label is not None:
            entry.update(label=verdict.label, decidedBy="model", reason=verdict.reason)
        else:
            entry["fallbackReason"] = {"code": verdict.code, "message": verdict.detail}
            if verdict.raw:
                entry["modelAnswer"] = verdict.raw[:500]
            if node.fallback == HISTORY:
                choice = await self._choose(node.id, list(node.branches))
                entry.update(label=choice.label, decidedBy="history", history=choice.to_dict())
            else:
                entry.update(label=node.fallback, decidedBy="fallback")
        if live:  # a paid answer is recorded before the step commits: never asked twice
            await self.env.replay.save(self.ctx.run, f"ai:{node.id}", entry)
        return entry

    async def _ask(self, node: AiNode, prompt: str, spec: Any) -> tuple[Verdict, bool]:
        """The model's verdict, and whether the model was really called."""
        if not self.env.models.configured:
            return Verdict(None, "NO_MODEL", NO_MODEL), False
        over = await self._over_budget()
        if over:
            return Verdict(None, "BUDGET_EXCEEDED", over), False
        if self.env.settings.ai.execution_max_cost_usd is not None:
            try:
                require_price(spec.model, self.env.settings.ai.prices)
            except ModelUnpriced as error:
                return Verdict(None, error.code, error.message), False
        try:
            model = self.env.models.chat_model(spec)
        except ModelError as error:
            return Verdict(None, error.code, error.message), False
        branches = {label: option.description for label, option in node.branches.items()}
        return await ask(model, prompt, branches, spec.timeout_seconds), True

    async def history(self, node: HistoryNode) -> dict[str, Any]:
        choice = await self._choose(node.id, list(node.branches))
        return {
            "node": node.id,
            "type": "history",
            "label": choice.label,
            "decidedBy": "history",
            "history": choice.to_dict(),
        }

    async def _choose(self, node_id: str, labels: list[str]) -> HistoryChoice:
        history = await self._load_history()
        stats = arm_stats(history, self.ctx.step.id, node_id)
        settings = self.env.settings
        run = self.ctx.run
        rng = seeded_rng(
            settings.ai.history_seed, self.ctx.step.id, node_id, run.idempotency_key or run.id
        )
        return choose(
            labels, stats, rng, exploration=settings.ai.history_exploration, options=self.options
        )

    async def _load_history(self) -> list[ExecutionSummary]:
        if self._history is None:
            store = self.env.executions
            execution = self.ctx.execution
            self._history = (
                []
                if store is None
                else await summaries(
                    store,
                    execution.tenant,
                    execution.workflow_id,
                    self.env.settings.ai.history_window,
                )
            )
        return self._history

    async def _replayed(self) -> dict[str, Any]:
        if self._recorded is None:
            self._recorded = await self.env.replay.load(self.ctx.run)
        return self._recorded

    async def _over_budget(self) -> str | None:
        """Why the execution's budget (settings) leaves nothing for a model call."""
        settings = self.env.settings
        limits = (settings.ai.execution_max_tokens, settings.ai.execution_max_cost_usd)
        if limits == (None, None) or self.env.executions is None:
            return None
        runs = await self.env.executions.list_runs(self.ctx.execution.id)
        used = execution_usage(runs, self.ctx.run.idempotency_key).add(self.usage)
        if limits[0] is not None and used.tokens >= limits[0]:
            return f"execution tokens: used {used.tokens} of {limits[0]}"
        if limits[1] is not None and used.cost_usd >= limits[1]:
            return f"execution cost USD: used {round(used.cost_usd, 6)} of {limits[1]}"
        return None
