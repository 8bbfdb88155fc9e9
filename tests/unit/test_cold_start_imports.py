"""A service's cold start does not import LangChain or LangGraph (about a third of the
import time of a function instance, and of a killed server's restart): they load with
the first decision or llm step a process runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("langgraph", "langchain_core", "langsmith", "langchain_google_vertexai")

PROBE = """
import sys
import shared.composition.hosting, shared.dev.server, shared.api.tasks, shared.api.triggers
from shared.composition.registry import build_registry
build_registry()  # every step type, decision and llm included
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))
print(",".join(loaded))
"""


def _loaded(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_services_start_without_langchain_or_langgraph() -> None:
    assert _loaded(PROBE) == ""


def test_the_probe_sees_langgraph_once_a_decision_graph_module_loads() -> None:
    """The same probe, after what the first decision step loads: it can see it."""
    assert "langgraph" in _loaded(
        PROBE.replace("loaded =", "import shared.ai.decision_graph\nloaded =")
    )
