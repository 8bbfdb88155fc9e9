"""The history router: a Thompson-sampling bandit over a node's branches.

Each branch's past outcomes (executions of the same workflow in which the same
decision node chose it) give a Beta posterior of its success rate, where a success
counts the mean evaluation score of the execution's graded answers (guardrails) when
it has any; the router draws
one sample per branch and subtracts small penalties for a branch's mean duration and
mean model cost (each relative to the costliest branch), then takes the best score.
Unexplored branches draw from the prior alone, so they get tried. Draws come from a
generator seeded by the ``ai_history_seed`` setting and the step visit, so the same
seed and the same history always give the same choice (and a redelivered step run
chooses what it chose before).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from shared.engine.steps import StepConfig


class HistoryOptions(StepConfig):
    """How the history router weighs duration and cost against success."""

    duration_weight: float = Field(default=0.1, ge=0.0, le=1.0)
    """Penalty of the slowest branch (mean execution duration), in success-rate points."""
    cost_weight: float = Field(default=0.1, ge=0.0, le=1.0)
    """Penalty of the costliest branch (mean model cost)."""


@dataclass
class ArmStats:
    """Outcomes of one branch."""

    count: int = 0
    succeeded: int = 0
    total_duration_ms: float = 0.0
    total_cost_usd: float = 0.0
    reward: float = 0.0
    """Successes weighted by evaluation scores: a success whose execution's answers
    were graded counts its mean score (0..1), an ungraded one counts 1."""
    scored: int = 0
    """Outcomes that carried an evaluation score."""

    @property
    def failed(self) -> int:
        return self.count - self.succeeded

    @property
    def mean_duration_ms(self) -> float | None:
        return self.total_duration_ms / self.count if self.count else None

    @property
    def mean_cost_usd(self) -> float | None:
        return self.total_cost_usd / self.count if self.count else None

    def record(
        self,
        success: bool,
        duration_ms: float = 0.0,
        cost_usd: float = 0.0,
        score: float | None = None,
    ) -> None:
        self.count += 1
        self.succeeded += 1 if success else 0
        self.total_duration_ms += duration_ms
        self.total_cost_usd += cost_usd
        if score is not None:
            self.scored += 1
        if success:
            self.reward += 1.0 if score is None else min(1.0, max(0.0, score))


def seeded_rng(seed: int, *parts: str) -> random.Random:
    """A generator determined by the seed and the given parts (e.g. the step visit)."""
    digest = hashlib.sha256("|".join([str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class HistoryChoice:
    """What the router chose and why (recorded in the decision's path)."""

    label: str
    scores: dict[str, float]
    observations: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "router": "thompson",
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "observations": self.observations,
        }


def choose(
    labels: Sequence[str],
    stats: Mapping[str, ArmStats],
    rng: random.Random,
    *,
    exploration: float = 1.0,
    options: HistoryOptions | None = None,
) -> HistoryChoice:
    """One Thompson-sampling draw over ``labels`` (ties go to the first declared)."""
    options = options or HistoryOptions()
    durations = [s.mean_duration_ms for s in stats.values() if s.mean_duration_ms]
    costs = [s.mean_cost_usd for s in stats.values() if s.mean_cost_usd]
    max_duration = max(durations, default=0.0)
    max_cost = max(costs, default=0.0)
    scores: dict[str, float] = {}
    observations: dict[str, dict[str, Any]] = {}
    for label in labels:
        arm = stats.get(label) or ArmStats()
        # evaluation scores weigh successes: a poorly graded success is a partial one
        theta = rng.betavariate(exploration + arm.reward, exploration + arm.count - arm.reward)
        penalty = 0.0
        if max_duration and arm.mean_duration_ms:
            penalty += options.duration_weight * arm.mean_duration_ms / max_duration
        if max_cost and arm.mean_cost_usd:
            penalty += options.cost_weight * arm.mean_cost_usd / max_cost
        scores[label] = theta - penalty
        observations[label] = {"count": arm.count, "succeeded": arm.succeeded}
        if arm.scored:
            observations[label]["reward"] = round(arm.reward, 4)
    best = max(labels, key=lambda label: (scores[label], -labels.index(label)))
    return HistoryChoice(best, scores, observations)


__all__ = ["ArmStats", "HistoryChoice", "HistoryOptions", "choose", "seeded_rng"]
