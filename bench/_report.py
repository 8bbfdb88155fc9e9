"""Machine info, medians, ratios and the human-readable table of the engine benchmark."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
from importlib import metadata
from typing import Any

from _workloads import Shape

__all__ = ["FIGURES", "TARGETS", "absolute", "figures", "machine_info", "meets", "ratios", "table"]

TARGETS: dict[str, float] = {
    "speedup_step": 5,
    "speedup_throughput": 5,
    "speedup_fanout": 5,
    "speedup_fanout_100": 5,
    "speedup_map": 5,
    "speedup_step_per_commit": 1,
    "ours_step_us": 50,
    "ours_exec_per_s": 5000,
}
"""Ratios are "at least"; ``ours_step_us`` is "at most" (see ``AT_MOST``)."""

AT_MOST = frozenset({"ours_step_us"})

FIGURES: dict[str, tuple[str, str]] = {
    "linear_ms_per_step": ("linear", "ms"),
    "fanout_ms_per_workflow": ("fanout", "ms"),
    "fanout_ms_per_step": ("fanout", "ms"),
    "wide_ms_per_workflow": ("wide", "ms"),
    "map_ms_per_workflow": ("map", "ms"),
    "throughput_exec_per_s": ("throughput", "executions/s"),
}
"""Figure name -> (the workload it comes from, its unit)."""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(directory: str) -> dict[str, Any]:
    """What the numbers depend on: cores, versions, load when the run started."""
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "sqlite": sqlite3.sqlite_version,
        "langgraph": _version("langgraph"),
        "langgraph_checkpoint": _version("langgraph-checkpoint"),
        "langgraph_checkpoint_sqlite": _version("langgraph-checkpoint-sqlite"),
        "aiosqlite": _version("aiosqlite"),
        "database_directory": directory,
    }


def _stat(values: list[float], unit: str) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "samples": [round(value, 4) for value in values],
        "unit": unit,
    }


def figures(samples: dict[str, list[float]], shape: Shape) -> dict[str, Any]:
    """Per-figure medians from a variant's timed seconds per workload."""
    scale = {
        "linear_ms_per_step": lambda s: s * 1000 / shape.linear_steps,
        "fanout_ms_per_workflow": lambda s: s * 1000,
        "fanout_ms_per_step": lambda s: s * 1000 / shape.fanout_steps,
        "wide_ms_per_workflow": lambda s: s * 1000,
        "map_ms_per_workflow": lambda s: s * 1000,
        "throughput_exec_per_s": lambda s: shape.throughput_executions / s,
    }
    out: dict[str, Any] = {}
    for name, (workload, unit) in FIGURES.items():
        if samples.get(workload):
            out[name] = _stat([scale[name](s) for s in samples[workload]], unit)
    return out


def _median(variants: dict[str, Any], key: str, figure: str) -> float:
    return float(variants[key][figure]["median"])


def _best(variants: dict[str, Any], figure: str, system: str, lowest: bool) -> str:
    """The key of the best ``system`` variant on ``figure`` (lowest time or highest rate)."""
    keys = [k for k, v in variants.items() if v["config"]["system"] == system and figure in v]
    pick = min if lowest else max
    return pick(keys, key=lambda k: _median(variants, k, figure))


def ratios(
    variants: dict[str, Any],
    ours_equal: str,
    ours_per_commit: str,
    ours_default: str,
    floor_equal: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The speedups over LangGraph's best variant (and the reference keys used)."""
    lg_step = _best(variants, "linear_ms_per_step", "langgraph", lowest=True)
    lg_fan = _best(variants, "fanout_ms_per_workflow", "langgraph", lowest=True)
    lg_wide = _best(variants, "wide_ms_per_workflow", "langgraph", lowest=True)
    lg_map = _best(variants, "map_ms_per_workflow", "langgraph", lowest=True)

    def faster(reference: str, ours: str, figure: str) -> float:
        return round(_median(variants, reference, figure) / _median(variants, ours, figure), 3)

    lg_rate = _best(variants, "throughput_exec_per_s", "langgraph", lowest=False)

    def per_step(ours: str) -> float:
        return round(
            _median(variants, lg_step, "linear_ms_per_step")
            / _median(variants, ours, "linear_ms_per_step"),
            3,
        )

    def rate(ours: str) -> float:
        return round(
            _median(variants, ours, "throughput_exec_per_s")
            / _median(variants, lg_rate, "throughput_exec_per_s"),
            3,
        )

    out = {
        "speedup_step": per_step(ours_equal),
        "speedup_step_per_commit": per_step(ours_per_commit),
        "speedup_throughput": rate(ours_equal),
        "speedup_throughput_per_commit": rate(ours_per_commit),
        "speedup_fanout": faster(lg_fan, ours_equal, "fanout_ms_per_workflow"),
        "speedup_fanout_100": faster(lg_wide, ours_equal, "wide_ms_per_workflow"),
        "speedup_map": faster(lg_map, ours_equal, "map_ms_per_workflow"),
        "speedup_step_default_not_equal_durability": per_step(ours_default),
        "speedup_throughput_default_not_equal_durability": rate(ours_default),
        "per_step_commit_over_floor": round(
            _median(variants, ours_per_commit, "linear_ms_per_step")
            / _median(variants, floor_equal, "linear_ms_per_step"),
            3,
        ),
    }
    reference = {
        "langgraph_step": lg_step,
        "langgraph_fanout": lg_fan,
        "langgraph_fanout_100": lg_wide,
        "langgraph_map": lg_map,
        "langgraph_throughput": lg_rate,
        "ours_equal_durability": ours_equal,
        "ours_equal_durability_per_step_commit": ours_per_commit,
        "ours_default": ours_default,
        "floor_equal_durability": floor_equal,
    }
    return out, reference


def absolute(variants: dict[str, Any], ours_default: str) -> dict[str, float]:
    """Our own figures at the default durability, in the units of their targets."""
    return {
        "ours_step_us": round(_median(variants, ours_default, "linear_ms_per_step") * 1000, 1),
        "ours_exec_per_s": round(_median(variants, ours_default, "throughput_exec_per_s"), 1),
    }


def meets(ratio: dict[str, float], absolute: dict[str, float]) -> dict[str, bool]:
    """Whether each target is met."""
    values = {**ratio, **absolute}
    return {
        name: values[name] <= target if name in AT_MOST else values[name] >= target
        for name, target in TARGETS.items()
    }


def table(report: dict[str, Any]) -> str:
    """The figures and ratios as aligned text."""
    head = (
        "variant",
        "linear ms/step",
        "fan-out ms/wf",
        "fan-out ms/step",
        "100-way ms/wf",
        "map100 ms/wf",
        "exec/s",
    )
    rows = [head]
    for variant in report["variants"].values():
        cells = [variant["label"]]
        for name in FIGURES:
            cells.append(f"{variant[name]['median']:.3f}" if name in variant else "-")
        rows.append(tuple(cells))
    width = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(width[0]) if i == 0 else c.rjust(width[i]) for i, c in enumerate(row))
        for row in rows
    ]
    machine, shape = report["machine"], report["shape"]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(
        0,
        f"medians of {shape['repeats']} repeats; {machine['cpu_count']} cpus,"
        f" python {machine['python']}, sqlite {machine['sqlite']},"
        f" langgraph {machine['langgraph']}",
    )
    lines.append("")
    durability = report["durability"]
    lines.append(
        f"LangGraph saver: journal_mode={durability['langgraph_saver']['journal_mode']}"
        f" synchronous={durability['langgraph_saver']['synchronous']}"
        f" -> equal durability = synchronous {durability['equal_synchronous']}"
    )
    met = report["meets_targets"]
    for name, value in report["ratios"].items():
        target = report["targets"].get(name)
        suffix = f"  (target >= {target:g}: {'met' if met[name] else 'not met'})" if target else ""
        lines.append(f"{name:<48} {value:>8.2f}x{suffix}")
    for name, value in report["absolute"].items():
        target = report["targets"][name]
        sign = "<=" if name in AT_MOST else ">="
        state = "met" if met[name] else "not met"
        lines.append(f"{name:<48} {value:>9.1f}  (target {sign} {target:g}: {state})")
    best = report.get("best_samples")
    if best:
        lines.append("")
        lines.append("from the fastest sample of each (other work on the machine only slows one):")
        for name, value in best["ratios"].items():
            if name in report["targets"]:
                lines.append(f"  {name:<46} {value:>8.2f}x")
        for name, value in best["absolute"].items():
            lines.append(f"  {name:<46} {value:>9.1f}")
    lines.append(f"references: {report['reference']}")
    return "\n".join(lines)
