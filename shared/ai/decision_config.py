"""Configuration of ``decision`` steps: a tree of nodes, each addressed by its id.

A reference (``then``, ``else``, ``next``, a branch's target) names another node, or
one of the step's ``nextSteps`` directly (an implicit leaf). Node kinds:

- ``condition``: a CEL condition; ``then`` when true, ``else`` when false.
- ``lookup``: a CEL ``key`` looked up in ``table``; the value (or ``default``) becomes
  the fact ``decision.<as>`` that later conditions and prompts can read; then ``next``.
- ``ai``: a model chooses one of ``branches`` (label -> target) from a ``prompt``; an
  answer outside the labels, a timeout, a refusal, malformed output or an error takes
  the ``fallback`` (a label, or ``history``: the history router).
- ``history``: the history router chooses one of ``branches`` (a bandit over outcomes).
- ``leaf``: the decision's outcome, one of the step's ``nextSteps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_core import InitErrorDetails

from shared.ai.history import HistoryOptions
from shared.ai.models import ModelOptions
from shared.engine.steps import StepConfig
from shared.errors import pointer_token
from shared.expressions import STEP_ROOTS

DECISION_ROOTS = STEP_ROOTS | {"decision"}
"""Roots of expressions inside a decision tree: the step's, plus ``decision`` facts."""
LEAF_PREFIX = "leaf__"

NODE_ID = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
LABEL = r"^[A-Za-z0-9_\-]{1,64}$"
NODE_TYPES = ("condition", "lookup", "ai", "history", "leaf")
HISTORY = "history"


class ConditionNode(StepConfig):
    id: str = Field(pattern=NODE_ID)
    type: Literal["condition"]
    when: str = Field(min_length=1, max_length=4096)
    """CEL over the step's expression roots plus ``decision`` (facts of lookups)."""
    then: str
    else_: str = Field(alias="else")


class LookupNode(StepConfig):
    id: str = Field(pattern=NODE_ID)
    type: Literal["lookup"]
    key: str = Field(min_length=1, max_length=4096)
    """CEL giving the key (converted to text: ``true``, ``3``, ``gold``)."""
    table: dict[str, Any] = Field(min_length=1)
    default: Any = None
    """The value when the key is not in the table; without it a miss fails the step."""
    as_: str = Field(alias="as", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    """Name of the fact: ``decision.<as>``."""
    next: str


class BranchOption(StepConfig):
    next: str
    """The node (or next step) this branch leads to."""
    description: str = Field(default="", max_length=500)
    """Shown to the model next to the label."""


def _short_branches(value: Any) -> Any:
    """``label: target`` is short for ``label: {next: target}``."""
    if isinstance(value, Mapping):
        return {k: {"next": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


Branches = Annotated[
    dict[Annotated[str, Field(pattern=LABEL)], BranchOption], BeforeValidator(_short_branches)
]


class AiNode(StepConfig):
    id: str = Field(pattern=NODE_ID)
    type: Literal["ai"]
    prompt: str = Field(min_length=1, max_length=20_000)
    """``${...}`` template over the expression roots and ``decision``."""
    branches: Branches = Field(min_length=1, max_length=50)
    fallback: str | None = None
    """A label of ``branches``, or ``history``; required."""
    model: ModelOptions | None = None


class HistoryNode(StepConfig):
    id: str = Field(pattern=NODE_ID)
    type: Literal["history"]
    branches: Branches = Field(min_length=1, max_length=50)


class LeafNode(StepConfig):
    id: str = Field(pattern=NODE_ID)
    type: Literal["leaf"]
    next: str
    """One of the step's nextSteps."""


DecisionNode = Annotated[
    ConditionNode | LookupNode | AiNode | HistoryNode | LeafNode, Field(discriminator="type")
]


class DecisionConfig(StepConfig):
    root: str | None = None
    """The first node; defaults to the first of ``nodes``."""
    nodes: list[DecisionNode] = Field(min_length=1, max_length=200)
    history: HistoryOptions = Field(default_factory=HistoryOptions)
    """How the history router weighs duration and cost."""

    def root_id(self) -> str:
        return self.root or self.nodes[0].id


def node_refs(node: Any) -> list[tuple[str, str]]:
    """(target, JSON pointer suffix under the node) of every reference of a node."""
    if isinstance(node, ConditionNode):
        return [(node.then, "then"), (node.else_, "else")]
    if isinstance(node, (LookupNode, LeafNode)):
        return [(node.next, "next")]
    if isinstance(node, (AiNode, HistoryNode)):
        return [
            (option.next, f"branches/{pointer_token(label)}")
            for label, option in node.branches.items()
        ]
    return []


def parse_decision_config(raw: Mapping[str, Any]) -> DecisionConfig:
    """Validate a decision config; error locations never include the node-kind tag, so
    every issue points into the submitted document."""
    try:
        return DecisionConfig.model_validate(dict(raw))
    except ValidationError as exc:
        details: list[InitErrorDetails] = []
        for error in exc.errors():
            loc = list(error["loc"])
            if len(loc) > 2 and loc[0] == "nodes" and loc[2] in NODE_TYPES:
                del loc[2]
            loc = [part for part in loc if part != "[key]"]
            detail: dict[str, Any] = {"type": error["type"], "loc": tuple(loc)}
            detail["input"] = error.get("input")
            if "ctx" in error:
                detail["ctx"] = error["ctx"]
            details.append(detail)  # type: ignore[arg-type]
        raise ValidationError.from_exception_data(exc.title, details) from None
