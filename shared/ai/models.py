"""The one factory of chat models, the port tests use to inject theirs, and model calls.

``build_model_provider(settings)`` is the only place a model client is built: Gemini on
Vertex AI (``langchain-google-vertexai``) when ``ai_provider = vertex``, and nothing at
all when ``ai_provider = none``, which is a real state (the offline default: AI nodes
route by history, llm steps replay recordings), never a fake model. Tests give the
AI step types a ``StaticModelProvider`` around one of LangChain's fake chat models.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from shared.engine.steps import StepConfig
from shared.errors import WorkflowError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage

    from shared.settings import Settings


class ModelOptions(StepConfig):
    """Per-step (or per-node) model configuration; unset fields take the settings' defaults."""

    model: str | None = Field(default=None, min_length=1, max_length=100)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout_seconds: float | None = Field(default=None, gt=0, le=600)
    """Time limit of one model call."""
    location: str | None = Field(default=None, min_length=1, max_length=64)
    max_output_tokens: int | None = Field(default=None, ge=1, le=65_536)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model configuration: what the provider builds and the accounting prices."""

    model: str
    temperature: float
    timeout_seconds: float
    location: str
    max_output_tokens: int


def resolve_spec(options: ModelOptions | None, settings: Settings) -> ModelSpec:
    """The step's options over the settings' defaults."""
    options = options or ModelOptions()
    return ModelSpec(
        model=options.model or settings.ai.model,
        temperature=(
            options.temperature if options.temperature is not None else settings.ai.temperature
        ),
        timeout_seconds=options.timeout_seconds or settings.ai.timeout_seconds,
        location=options.location or settings.ai.location or settings.gcp.location,
        max_output_tokens=options.max_output_tokens or settings.ai.max_output_tokens,
    )


class ModelError(WorkflowError):
    """A model could not be built or called. Codes: NO_MODEL, MODEL_CONFIG,
    MODEL_CREDENTIALS, MODEL_PERMISSION, MODEL_UNAVAILABLE, MODEL_TIMEOUT, MODEL_ERROR."""

    code = "MODEL_ERROR"


class ModelProvider(Protocol):
    """The model port: builds a chat model for a spec, or says none is configured."""

    @property
    def configured(self) -> bool:
        """False when no model is configured (offline): callers route or replay instead."""

    def chat_model(self, spec: ModelSpec) -> BaseChatModel:
        """The chat model for ``spec``; raises ``ModelError`` (NO_MODEL when unconfigured)."""


class NoModelProvider:
    """No model is configured: the offline default."""

    configured = False

    def chat_model(self, spec: ModelSpec) -> BaseChatModel:
        raise ModelError(
            "no model is configured (WFE_AI_PROVIDER=none)", code="NO_MODEL", retryable=False
        )


@dataclass
class StaticModelProvider:
    """Always the given chat model (tests inject LangChain's fake chat models this way)."""

    model: BaseChatModel
    configured: bool = True

    def chat_model(self, spec: ModelSpec) -> BaseChatModel:
        return self.model


@dataclass
class VertexModelProvider:
    """Gemini on Vertex AI through ``langchain-google-vertexai``, one client per spec.

    The package is imported on first use (it costs seconds), never at import time.
    ``ChatVertexAI`` is deprecated since langchain-google-vertexai 3.2 in favour of
    ``langchain_google_genai.ChatGoogleGenerativeAI`` (Vertex backend), a package the
    design's dependency list does not include: this class is the one place to switch.
    """

    project: str
    default_location: str = "us-central1"
    max_retries: int = 1
    _models: dict[ModelSpec, BaseChatModel] = field(default_factory=dict, repr=False)

    configured = True

    def chat_model(self, spec: ModelSpec) -> BaseChatModel:
        found = self._models.get(spec)
        if found is None:
            found = self._models[spec] = self._build(spec)
        return found

    def _build(self, spec: ModelSpec) -> BaseChatModel:
        from langchain_google_vertexai import ChatVertexAI

        with warnings.catch_warnings():
            # the deprecation notice of ChatVertexAI (see the class docstring), once per spec
            warnings.simplefilter("ignore", DeprecationWarning)
            model: BaseChatModel = ChatVertexAI(
                model=spec.model,
                project=self.project,
                location=spec.location or self.default_location,
                temperature=spec.temperature,
                max_tokens=spec.max_output_tokens,
                timeout=spec.timeout_seconds,
                max_retries=self.max_retries,
            )
        return model


def build_model_provider(settings: Settings) -> ModelProvider:
    """THE model factory: what ``settings.ai.provider`` asks for, or nothing."""
    if settings.ai.provider == "none":
        return NoModelProvider()
    project = settings.ai.project or settings.gcp.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise ModelError(
            "ai_provider=vertex needs a project: set WFE_AI_PROJECT (or WFE_PROJECT)",
            code="MODEL_CONFIG",
            retryable=False,
        )
    return VertexModelProvider(project, settings.ai.location or settings.gcp.location)


_CREDENTIAL_ERRORS = ("DefaultCredentialsError", "RefreshError", "TransportError")
_PERMISSION_ERRORS = ("PermissionDenied", "Unauthenticated", "Forbidden")
_TRANSIENT_ERRORS = (
    "ResourceExhausted",
    "ServiceUnavailable",
    "DeadlineExceeded",
    "InternalServerError",
)


def classify(error: BaseException) -> ModelError:
    """A library error as a coded ``ModelError`` (credentials, permission, transient...)."""
    if isinstance(error, ModelError):
        return error
    names = {cls.__name__ for cls in type(error).__mro__}
    text = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    if names & set(_CREDENTIAL_ERRORS):
        return ModelError(
            f"no usable Google credentials for Vertex AI ({text}); set "
            "GOOGLE_APPLICATION_CREDENTIALS or run on a service account",
            code="MODEL_CREDENTIALS",
            retryable=False,
        )
    if names & set(_PERMISSION_ERRORS):
        return ModelError(text, code="MODEL_PERMISSION", retryable=False)
    if isinstance(error, TimeoutError):
        return ModelError("the model call timed out", code="MODEL_TIMEOUT", retryable=True)
    if names & set(_TRANSIENT_ERRORS):
        return ModelError(text, code="MODEL_UNAVAILABLE", retryable=True)
    return ModelError(text, code="MODEL_ERROR", retryable=True)


async def call_model(model: Any, messages: Sequence[BaseMessage], timeout: float) -> AIMessage:
    """One model call with a time limit; every failure becomes a coded ``ModelError``."""
    from langchain_core.messages import AIMessage

    try:
        result = await asyncio.wait_for(model.ainvoke(list(messages)), timeout)
    except Exception as exc:
        raise classify(exc) from exc
    if not isinstance(result, AIMessage):
        raise ModelError(f"the model answered a {type(result).__name__}", code="MODEL_ERROR")
    return result


__all__ = [
    "ModelError",
    "ModelOptions",
    "ModelProvider",
    "ModelSpec",
    "NoModelProvider",
    "StaticModelProvider",
    "VertexModelProvider",
    "build_model_provider",
    "call_model",
    "classify",
    "resolve_spec",
]
