"""What the AI step types use at run time, resolved from the engine's ``StepServices``.

Bootstrap registers the step types with no arguments; on their first run they build
the model provider with the one factory (``build_model_provider``) from the settings
the engine carries, and read recorded outputs and history through the execution
store (``StepServices.executions``). Tests pass an ``AiDependencies`` to inject a fake
chat model (``StaticModelProvider``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.ai.models import ModelError, ModelProvider, ModelSpec, build_model_provider
from shared.ai.replay import RecordingLibrary, ReplayStore, RunStateReplay
from shared.engine.steps import StepServices
from shared.ports import ExecutionStore
from shared.ports.checkpoints import CheckpointStore
from shared.settings import Settings


@dataclass
class AiDependencies:
    """Overrides of what the AI step types would build from settings (tests, embedding)."""

    models: ModelProvider | None = None
    replay: ReplayStore | None = None
    recordings: RecordingLibrary | None = None
    settings: Settings | None = None
    checkpoints: CheckpointStore | None = None
    """Where agent steps keep their LangGraph checkpoints (default: the runtime's,
    ``StepServices.checkpoints``)."""


@dataclass
class AiEnv:
    """Everything one AI step run needs."""

    settings: Settings
    models: ModelProvider
    executions: ExecutionStore | None
    replay: ReplayStore
    recordings: RecordingLibrary
    http: Any = None
    """The engine's ``HttpGateway`` (egress policy) for the fetch tool."""
    bus: Any = None
    """The event bus, for the publish tool."""
    checkpoints: CheckpointStore | None = None
    """The checkpoint store of agent steps (None: the runtime wires none)."""


@dataclass
class _Unbuildable:
    """A provider the settings ask for but cannot build (e.g. vertex without a project)."""

    error: ModelError
    configured: bool = True

    def chat_model(self, spec: ModelSpec) -> Any:
        raise self.error


@dataclass
class AiServices:
    """Resolves an ``AiEnv`` per step run; builds each provider once per settings."""

    deps: AiDependencies = field(default_factory=AiDependencies)
    _providers: dict[int, tuple[Settings, ModelProvider]] = field(default_factory=dict)
    _libraries: dict[str, RecordingLibrary] = field(default_factory=dict)
    _process_saver: Any = None

    def env(self, services: StepServices) -> AiEnv:
        settings = self.deps.settings or services.settings
        executions = services.executions
        return AiEnv(
            settings=settings,
            models=self.deps.models or self._provider(settings),
            executions=executions,
            replay=self.deps.replay or RunStateReplay(executions),
            recordings=self.deps.recordings or self._library(settings.ai.recordings_dir),
            http=services.http,
            bus=services.event_bus,
            checkpoints=self.deps.checkpoints or services.checkpoints,
        )

    def saver(self, env: AiEnv) -> Any:
        """The LangGraph checkpointer of agent steps: a ``StoreCheckpointSaver`` over the
        env's checkpoint store, else LangGraph's in-memory saver of this process (an
        engine wired without a store, as in unit tests: nothing outlives the process)."""
        if env.checkpoints is not None:
            from shared.ai.checkpointer import StoreCheckpointSaver

            return StoreCheckpointSaver(env.checkpoints)
        if self._process_saver is None:
            from langgraph.checkpoint.memory import InMemorySaver

            self._process_saver = InMemorySaver()
        return self._process_saver

    def _provider(self, settings: Settings) -> ModelProvider:
        found = self._providers.get(id(settings))
        if found is not None and found[0] is settings:
            return found[1]
        try:
            provider: ModelProvider = build_model_provider(settings)
        except ModelError as error:
            provider = _Unbuildable(error)
        self._providers[id(settings)] = (settings, provider)
        return provider

    def _library(self, folder: str) -> RecordingLibrary:
        if folder not in self._libraries:
            self._libraries[folder] = RecordingLibrary(Path(folder) if folder else None)
        return self._libraries[folder]
