"""``decision``: a decision tree compiled into a LangGraph graph, run inside the step.

The output records the outcome, the path taken (one entry per node: a condition's
result, a lookup's key and value, an AI node's label with the model's reason or the
fallback and why) and the facts found. The chosen outcome is the next step. A tree
with no AI or history node does no I/O and runs inline like ``branch``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.ai.accounting import USAGE_KEY
from shared.ai.decision_compile import check_decision, compiled_graph, has_io
from shared.ai.decision_config import DecisionConfig, LeafNode, LookupNode, parse_decision_config
from shared.ai.routing import StepRouter
from shared.ai.services import AiServices
from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.errors import Issue, StepFailed
from shared.models import WorkflowStep

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

_PARSED: OrderedDict[int, tuple[Mapping[str, Any], DecisionConfig]] = OrderedDict()
_PARSED_CACHE = 1024
_IO_TYPES = frozenset({"ai", "history"})


class DecisionStep(StepType):
    type_name = "decision"
    inline = True
    """Without AI or history nodes; ``inline_for`` looks at the config."""
    branching = True
    config_model = DecisionConfig

    def __init__(self, services: AiServices | None = None) -> None:
        self.services = services or AiServices()

    def parse_config(self, config: Mapping[str, Any]) -> DecisionConfig:
        """Parsed once per (immutable, cached) definition's config object."""
        key = id(config)
        found = _PARSED.get(key)
        if found is not None and found[0] is config:
            return found[1]
        parsed = parse_decision_config(config)
        _PARSED[key] = (config, parsed)  # keeps the config alive, so its id is not reused
        if len(_PARSED) > _PARSED_CACHE:
            _PARSED.popitem(last=False)
        return parsed

    def inline_for(self, step: WorkflowStep) -> bool:
        nodes = step.config.get("nodes")
        if not isinstance(nodes, list):
            return True
        return not any(isinstance(n, Mapping) and n.get("type") in _IO_TYPES for n in nodes)

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        return check_decision(config, list(step.next_steps), f"{path}/config")

    def referenced_steps(self, config: Any) -> list[tuple[str, str]]:
        return [
            (node.next, f"nodes/{index}/next")
            for index, node in enumerate(config.nodes)
            if isinstance(node, LeafNode)
        ]

    async def execute(self, ctx: StepContext) -> Outcome:
        from shared.ai.decision_graph import DecisionContext  # LangGraph loads here, lazily

        config: DecisionConfig = ctx.config
        graph = compiled_graph(config)
        env = ctx.env
        limit: RunnableConfig = {"recursion_limit": len(config.nodes) + 5}
        if not has_io(config):
            result = graph.invoke({"path": []}, limit, context=DecisionContext(env))
            return _complete(config, result, None)
        router = StepRouter(self.services.env(ctx.services), ctx, config.history)
        result = await graph.ainvoke({"path": []}, limit, context=DecisionContext(env, router))
        usage = router.usage.to_dict() if router.usage.calls else None
        if usage is not None:
            ctx.run.state = {**ctx.run.state, USAGE_KEY: usage}
        return _complete(config, result, usage)


def _complete(
    config: DecisionConfig, result: dict[str, Any], usage: dict[str, Any] | None
) -> Complete:
    outcome = result.get("outcome")
    if not isinstance(outcome, str):  # pragma: no cover - every path ends at a leaf
        raise StepFailed("the decision reached no leaf", code="DECISION_NO_OUTCOME")
    output: dict[str, Any] = {"outcome": outcome, "path": result.get("path", [])}
    # Every fact the tree can find, null where the path ran no lookup for it: a later
    # ``${vars.d.facts.discount}`` reads null instead of failing the execution.
    output["facts"] = {
        **{node.as_: None for node in config.nodes if isinstance(node, LookupNode)},
        **(result.get("facts") or {}),
    }
    if usage is not None:
        output["usage"] = usage
    return Complete(output=output, next_steps=[outcome])
