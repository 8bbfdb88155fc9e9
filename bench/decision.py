"""Per-step overhead of a ``decision`` step without an AI node vs an equivalent ``branch``.

Usage::

    .venv/bin/python bench/decision.py [--json] [--steps N] [--repeats N]

Both workflows are a chain of N routing steps on the embedded store (a SQLite file in
WAL mode, the local runtime's defaults). Each routing step evaluates the same CEL
condition and picks the next routing step; in one workflow it is a ``branch`` step
(one case), in the other a ``decision`` step whose tree is one condition node with two
leaves (compiled into a LangGraph graph, run in-process). Both are inline: the whole
chain runs in one task delivery, so the difference is the step's own cost.

Two figures, each measured in the same run for both kinds, repeats alternating:

- ``engine``: wall time of a whole execution divided by N (claim, run, record, chain);
- ``execute``: the step type's ``execute`` alone on a prepared context (no store).

Medians over the repeats; compare the ratios, not the absolute times. A human-readable
summary goes to stderr; ``--json`` prints the report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.engine.steps import StepContext
from shared.models import ExecutionStatus, StepRun, WorkflowDefinition, WorkflowExecution
from shared.settings import Settings

CONDITION = "vars.n >= 0"


def chain(kind: str, steps: int) -> dict[str, Any]:
    """N routing steps of ``kind``; step i goes to step i+1 (the condition is true) and
    would go to ``off`` otherwise."""
    body: list[dict[str, Any]] = []
    for index in range(steps):
        nxt = f"r{index + 1}" if index + 1 < steps else "end"
        if kind == "branch":
            config: dict[str, Any] = {"cases": [{"when": CONDITION, "next": nxt}], "default": "off"}
        else:
            node = {"id": "c", "type": "condition", "when": CONDITION, "then": nxt, "else": "off"}
            config = {"nodes": [node]}
        body.append({"id": f"r{index}", "type": kind, "config": config, "nextSteps": [nxt, "off"]})
    body.append({"id": "end", "type": "transform", "config": {"set": {"done": True}}})
    body.append({"id": "off", "type": "transform", "config": {"set": {"done": False}}})
    return {"name": f"bench-{kind}", "variables": {"n": 1}, "steps": body}


async def engine_sample(runtime: LocalRuntime, workflow_id: str, steps: int) -> float:
    began = time.perf_counter()
    execution = await runtime.app.start_execution(StartRequest(workflow_id, {}))
    if not await runtime.queue.join(120):
        raise RuntimeError("the chain did not finish")
    elapsed = time.perf_counter() - began
    done = await runtime.app.get_execution(execution.id)
    if done.status != ExecutionStatus.SUCCEEDED or done.variables.get("done") is not True:
        raise RuntimeError(f"bench execution ended {done.status}: {done.error}")
    return elapsed / steps


def execute_sampler(runtime: LocalRuntime, definition: WorkflowDefinition) -> Any:
    """A function timing ``execute`` of the first routing step, ``loops`` times."""
    step = definition.steps[0]
    step_type = runtime.engine.registry.get(step.type)
    execution = WorkflowExecution(  # not stored: the sample does no store I/O
        id="bench", workflow_id=definition.id, workflow_version=1, variables={"n": 1}
    )
    run = StepRun(id="r", execution_id="bench", step_id=step.id, step_type=step.type)

    async def sample(loops: int) -> float:
        began = time.perf_counter()
        for _ in range(loops):
            ctx = StepContext(
                run,
                step,
                definition,
                execution,
                dict(execution.variables),
                runtime.engine.clock.now(),
                runtime.engine.services,
            )
            ctx.config = step_type.parse_config(step.config)
            await step_type.execute(ctx)
        return (time.perf_counter() - began) / loops

    return sample


async def main(steps: int, repeats: int, loops: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings.local_mode(os.path.join(directory, "bench.db"))
        async with build_local(settings) as runtime:
            ids, samplers = {}, {}
            for kind in ("branch", "decision"):
                definition = await runtime.app.create_workflow(chain(kind, steps))
                ids[kind] = definition.id
                samplers[kind] = execute_sampler(runtime, definition)
                await engine_sample(runtime, definition.id, steps)  # warm-up, not timed
                await samplers[kind](loops)
            engine: dict[str, list[float]] = {"branch": [], "decision": []}
            execute: dict[str, list[float]] = {"branch": [], "decision": []}
            for repeat in range(repeats):
                order = ("branch", "decision") if repeat % 2 == 0 else ("decision", "branch")
                for kind in order:
                    engine[kind].append(await engine_sample(runtime, ids[kind], steps))
                    execute[kind].append(await samplers[kind](loops))
    report: dict[str, Any] = {
        "benchmark": "decision step (no AI node) vs branch step, per step",
        "store": "embedded SQLite (WAL), local runtime defaults",
        "steps_per_execution": steps,
        "repeats": repeats,
        "execute_loops": loops,
    }
    for name, samples in (("engine", engine), ("execute", execute)):
        branch = statistics.median(samples["branch"]) * 1e6
        decision = statistics.median(samples["decision"]) * 1e6
        report[name] = {
            "branch_us": round(branch, 1),
            "decision_us": round(decision, 1),
            "overhead_us": round(decision - branch, 1),
            "ratio": round(decision / branch, 2),
        }
    return report


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--loops", type=int, default=2000)
    args = parser.parse_args()
    report = asyncio.run(main(args.steps, args.repeats, args.loops))
    for name in ("engine", "execute"):
        figures = report[name]
        print(
            f"{name:8} branch {figures['branch_us']:8.1f} us/step   decision "
            f"{figures['decision_us']:8.1f} us/step   overhead {figures['overhead_us']:7.1f} us"
            f"   ratio {figures['ratio']:.2f}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    cli()
