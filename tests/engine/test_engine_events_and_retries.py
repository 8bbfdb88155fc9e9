"""What the engine records, not only that it records (issue 11): the data inside
events, and retry delays under a non-zero jitter (within their documented bounds,
deterministic per step run)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from harness import Harness, linear
from hypothesis import given
from hypothesis import strategies as st

from shared.engine import policy
from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.models import ExecutionStatus, RetryPolicy


class TickStep(StepType):
    """Takes three seconds of the manual clock, then answers with the input's ``n``."""

    type_name = "tick"

    def __init__(self, h: Harness) -> None:
        self.h = h

    async def execute(self, ctx: StepContext) -> Outcome:
        self.h.clock.advance(3)
        return Complete(output={"n": ctx.execution.input.get("n")})


def projection(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.seq, e.type, e.step_id, e.status, e.data) for e in events]


# -- event data -------------------------------------------------------------------------


async def test_events_carry_attempts_deliveries_errors_and_durations(h: Harness) -> None:
    h.registry.register(TickStep(h))
    h.counter.fail_codes["flaky"] = ("UPSTREAM", True)
    retry = {"maxAttempts": 2, "initialDelaySeconds": 10, "jitter": 0}
    workflow_id = await h.create(
        linear(
            {"id": "flaky", "type": "count", "onError": {"retry": retry}},
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 3600},
            },
            {"id": "tick", "type": "tick"},
        )
    )
    execution = await h.start(workflow_id, {"n": 7})
    await h.drain(advance=False)  # flaky fails once, its retry is due in 10 s
    del h.counter.fail_codes["flaky"]
    h.clock.advance(10)
    await h.drain(advance=False)  # the retry succeeds, ask parks until 10:00:10 or "go"
    await h.app.send_event(execution.id, "go", {"yes": True})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == {"n": 7}
    runs = {(r.step_id, r.attempt): r for r in await h.runs(execution.id)}
    first, second = runs[("flaky", 1)], runs[("flaky", 2)]
    upstream = {
        "code": "UPSTREAM",
        "message": "flaky told to fail",
        "retryable": True,
        "stepId": "flaky",
    }
    events = await h.store.list_events(execution.id)
    assert [e.run_id for e in events if e.step_id == "flaky"] == [
        first.id,
        first.id,
        second.id,
        second.id,
        second.id,
    ]
    got = projection(events)
    failed_error = got[2][4].pop("error")
    assert {k: failed_error.get(k) for k in upstream} == upstream
    assert got == [
        (
            1,
            "execution.started",
            None,
            "running",
            {"workflowVersion": 1, "trigger": {"type": "manual"}},
        ),
        (2, "step.started", "flaky", "running", {"attempt": 1, "delivery": 1}),
        (3, "step.failed", "flaky", "failed", {"attempt": 1, "durationMs": 0.0}),
        (4, "step.retrying", "flaky", "scheduled", {"delaySeconds": 10.0, "attempt": 2}),
        (5, "step.started", "flaky", "running", {"attempt": 2, "delivery": 1}),
        (6, "step.succeeded", "flaky", "succeeded", {"attempt": 2, "durationMs": 0.0}),
        (7, "step.started", "ask", "running", {"attempt": 1, "delivery": 1}),
        (
            8,
            "step.waiting",
            "ask",
            "waiting",
            {"until": "2026-01-05T10:00:10+00:00", "signal": "go"},
        ),
        (9, "step.woken", "ask", "scheduled", {"signal": "go"}),
        (10, "execution.signal", None, "waiting", {"name": "go", "delivered": True}),
        # the woken run is claimed again: its second delivery
        (11, "step.started", "ask", "running", {"attempt": 1, "delivery": 2}),
        (12, "step.succeeded", "ask", "succeeded", {"attempt": 1, "durationMs": 0.0}),
        (13, "step.started", "tick", "running", {"attempt": 1, "delivery": 1}),
        (14, "step.succeeded", "tick", "succeeded", {"attempt": 1, "durationMs": 3000.0}),
        (15, "execution.succeeded", None, "succeeded", {"durationMs": 13_000.0}),
    ]
    assert done.steps_run == 4 and done.duration == 13_000.0


async def test_a_failed_execution_event_names_the_error_and_its_step(h: Harness) -> None:
    h.counter.fail_codes["b"] = ("REFUSED", False)
    execution = await h.run(linear({"id": "a", "type": "count"}, {"id": "b", "type": "count"}))
    events = await h.store.list_events(execution.id)
    failed = [e for e in events if e.type == "step.failed"]
    assert [(e.step_id, e.data["error"]["code"], e.data["error"]["retryable"]) for e in failed] == [
        ("b", "REFUSED", False)
    ]
    end = events[-1]
    assert end.type == "execution.failed" and end.status == "failed"
    assert end.data["error"]["code"] == "REFUSED" and end.data["error"]["stepId"] == "b"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_redelivery_after_a_dead_worker_is_delivery_two(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count", "timeoutSeconds": 10}))
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    await h.engine._claim(task, "a-worker-that-dies")
    h.clock.advance(timedelta(seconds=60))
    await h.deliver(task)
    started = [e.data for e in await h.store.list_events(execution.id) if e.type == "step.started"]
    assert started == [{"attempt": 1, "delivery": 1}, {"attempt": 1, "delivery": 2}]
    [run] = await h.runs(execution.id)
    assert run.deliveries == 2


# -- retry jitter -----------------------------------------------------------------------


def bounds(retry: RetryPolicy, attempt: int) -> tuple[float, float, float]:
    """The documented delay after ``attempt`` failed: base +/- jitter, capped."""
    base = min(
        retry.initial_delay_seconds * retry.multiplier ** (attempt - 1), retry.max_delay_seconds
    )
    return base, base * (1 - retry.jitter), min(base * (1 + retry.jitter), retry.max_delay_seconds)


@given(
    initial=st.floats(0.1, 100),
    multiplier=st.floats(1, 4),
    maximum=st.floats(1, 1000),
    jitter=st.floats(0.01, 1),
    attempt=st.integers(1, 12),
    seed=st.text(min_size=1, max_size=40),
)
def test_a_jittered_delay_stays_within_its_bounds_and_is_deterministic(
    initial: float, multiplier: float, maximum: float, jitter: float, attempt: int, seed: str
) -> None:
    retry = RetryPolicy(
        max_attempts=20,
        initial_delay_seconds=initial,
        multiplier=multiplier,
        max_delay_seconds=maximum,
        jitter=jitter,
    )
    _, low, high = bounds(retry, attempt)
    delay = policy.backoff_seconds(retry, attempt, seed)
    assert low - 1e-9 <= delay <= high + 1e-9
    assert policy.backoff_seconds(retry, attempt, seed) == delay


def test_jitter_spreads_delays_both_ways_around_the_base() -> None:
    retry = RetryPolicy(
        max_attempts=5,
        initial_delay_seconds=10,
        multiplier=2,
        max_delay_seconds=1000,
        jitter=0.5,
    )
    delays = [policy.backoff_seconds(retry, 2, f"run-{i}") for i in range(400)]
    assert min(delays) < 20 * 0.6 and max(delays) > 20 * 1.4  # the whole +/- 50 % is used
    assert 20 * 0.9 < sum(delays) / len(delays) < 20 * 1.1  # centred on the base
    assert len(set(delays)) > 390  # the seed decides
    assert all(10 <= d <= 30 for d in delays)


def test_a_capped_delay_jitters_below_the_cap_only() -> None:
    retry = RetryPolicy(
        max_attempts=5,
        initial_delay_seconds=10,
        multiplier=10,
        max_delay_seconds=50,
        jitter=0.2,
    )
    delays = [policy.backoff_seconds(retry, 3, f"run-{i}") for i in range(200)]
    assert all(40 <= d <= 50 for d in delays)
    assert min(delays) < 42 and delays.count(50) > 50  # half the draws hit the cap


def test_without_jitter_the_delay_is_the_exponential_base() -> None:
    retry = RetryPolicy(
        max_attempts=9, initial_delay_seconds=2, multiplier=3, max_delay_seconds=100, jitter=0
    )
    assert [policy.backoff_seconds(retry, a, "s") for a in range(1, 7)] == [
        2,
        6,
        18,
        54,
        100,
        100,
    ]


async def test_the_engine_schedules_retries_with_the_jittered_delay_of_each_run(
    h: Harness,
) -> None:
    retry = {
        "maxAttempts": 4,
        "initialDelaySeconds": 10,
        "multiplier": 2,
        "maxDelaySeconds": 1000,
        "jitter": 0.5,
    }
    h.counter.fail_codes["flaky"] = ("UPSTREAM", True)
    workflow_id = await h.create(
        linear({"id": "flaky", "type": "count", "onError": {"strategy": "retry", "retry": retry}})
    )
    execution = await h.start(workflow_id)
    await h.drain()
    runs = await h.runs(execution.id)
    assert [r.attempt for r in runs] == [1, 2, 3, 4]
    model = RetryPolicy.model_validate(retry)
    retrying = [e for e in await h.store.list_events(execution.id) if e.type == "step.retrying"]
    assert len(retrying) == 3
    delays = []
    for failed, nxt, event in zip(runs, runs[1:], retrying, strict=False):
        expected = policy.backoff_seconds(model, failed.attempt, failed.id)
        base, low, high = bounds(model, failed.attempt)
        assert low <= expected <= high
        assert event.data == {"delaySeconds": expected, "attempt": failed.attempt + 1}
        assert event.run_id == nxt.id
        assert failed.finished_at is not None and nxt.due_at is not None
        assert nxt.due_at - failed.finished_at == timedelta(seconds=expected)
        assert nxt.started_at == nxt.due_at
        delays.append(expected / base)
    assert len(set(delays)) == 3, "each run draws its own jitter"
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.FAILED
