"""Settings from the environment (``WFE_*`` variables), validated once at startup.

Grouped by concern: a few top-level fields, then ``engine`` (any backend), ``local``,
``gcp`` and ``ai``. The variable names stay flat, as users and Terraform spell them:
``WFE_<FIELD>`` for the top level and the engine, local and gcp groups, and
``WFE_AI_<FIELD>`` for the ai group (``settings.ai.model`` is ``WFE_AI_MODEL``).
Lists are comma-separated (``WFE_API_KEYS=a,b``); ``WFE_AI_PRICES`` is JSON.

``Settings.from_env()`` is the entry point: it reads the process environment (or the
mapping it is given), applies overrides named like the variables without ``WFE_``
(``db_path=...``, ``ai_model=...``) and raises ``InputInvalid`` (code
``INVALID_SETTINGS``) naming the variable at fault. Tests build settings in code:
``Settings.local_mode(db_path=...)`` or ``Settings(local=LocalSettings(db_path=...))``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.errors import InputInvalid

__all__ = [
    "AiSettings",
    "EngineTuning",
    "GcpSettings",
    "LimitSettings",
    "LocalSettings",
    "Settings",
    "TenantLimits",
]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _json_object(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
"""A list from a comma-separated variable (pydantic-settings would want JSON)."""


class _Group(BaseModel):
    """A group of settings; its variables are ``env_prefix`` + the field name."""

    model_config = ConfigDict(extra="forbid")
    env_prefix: ClassVar[str] = "WFE_"


class EngineTuning(_Group):
    """How the engine runs steps and sweeps, whatever the backend."""

    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    """Pause between two sweeper passes (a long-lived process sweeps)."""
    sweep_grace_seconds: float = Field(default=30.0, ge=0)
    """How late a step run's task may be before the sweeper re-enqueues it."""
    http_allowed_hosts: CommaList = Field(default_factory=list)
    """Hosts http steps may call even over plain http or on private addresses."""
    chain_commit_steps: int = Field(default=50, ge=1, le=500)
    """Inline steps committed together in one transaction."""
    max_chain_steps: int = Field(default=500, ge=1, le=10_000)
    """Most steps one delivery runs inline before handing over to the queue."""
    default_step_timeout_seconds: float = Field(default=300.0, gt=0)
    """Time limit of a step that sets none."""
    execution_retention_days: int = Field(default=30, ge=0, le=3650)
    """Days finished executions are kept before the retention sweep deletes them (a
    tenant's ``retentionDays`` overrides it); 0 keeps them forever."""
    audit_retention_days: int = Field(default=365, ge=0, le=36_500)
    """Days audit log entries are kept; 0 keeps them forever."""
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    """Pause between two retention sweeps of a long-lived local process (``wfe dev``);
    in the cloud Cloud Scheduler calls ``POST /api/v1/admin/retention:sweep``."""


class TenantLimits(BaseModel):
    """One tenant's own limits (``WFE_TENANT_LIMITS``); unset fields keep the defaults."""

    model_config = ConfigDict(extra="forbid")

    principal_rps: float | None = Field(default=None, gt=0)
    principal_burst: float | None = Field(default=None, ge=1)
    tenant_rps: float | None = Field(default=None, gt=0)
    tenant_burst: float | None = Field(default=None, ge=1)
    start_rps: float | None = Field(default=None, gt=0)
    start_burst: float | None = Field(default=None, ge=1)
    webhook_rps: float | None = Field(default=None, gt=0)
    webhook_burst: float | None = Field(default=None, ge=1)


class LimitSettings(_Group):
    """Rate limits (token buckets: a sustained rate per second and a burst), kept where
    the store is (SQLite, memory or Firestore), so every instance shares them."""

    rate_limits: bool = True
    """Apply the limits below (False: no bucket is read or written)."""
    limit_principal_rps: float = Field(default=100.0, gt=0)
    """API requests per second of one principal (API key, ID token subject)."""
    limit_principal_burst: float = Field(default=1000.0, ge=1)
    limit_tenant_rps: float = Field(default=500.0, gt=0)
    """API requests per second of all the principals of one tenant together."""
    limit_tenant_burst: float = Field(default=5000.0, ge=1)
    limit_start_rps: float = Field(default=100.0, gt=0)
    """Execution starts per second of one tenant, by any door (REST, GraphQL, triggers)."""
    limit_start_burst: float = Field(default=1000.0, ge=1)
    limit_webhook_rps: float = Field(default=50.0, gt=0)
    """Webhook calls per second of one workflow from one source."""
    limit_webhook_burst: float = Field(default=500.0, ge=1)
    limit_shards: int = Field(default=16, ge=1, le=256)
    """Firestore: most shard documents per bucket (each takes about 1 write/s)."""
    tenant_limits: Annotated[dict[str, TenantLimits], BeforeValidator(_json_object)] = Field(
        default_factory=dict
    )
    """Per tenant overrides, JSON: ``{"acme": {"start_rps": 5, "start_burst": 20}}``
    (fields named like the settings without ``limit_``)."""
    tenant_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long an instance trusts what it read of the tenant registry (tenants, API
    keys): a key revoked or a tenant disabled elsewhere is refused within this time."""


class LocalSettings(_Group):
    """``backend = local``: the embedded store and the in-process dispatcher."""

    db_path: str = ".wfe/wfe.db"
    """SQLite file of local mode (``:memory:`` for a throwaway store)."""
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    """NORMAL survives a process crash; FULL also an OS crash or power loss."""
    workers: int = Field(default=32, ge=1, le=256)
    """Concurrent deliveries of the local task dispatcher."""
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Local dispatcher: probability of an injected duplicate delivery (testing)."""


class GcpSettings(_Group):
    """``backend = gcp`` (docs/gcp.md); local mode reads none of these."""

    project: str = ""
    """Google Cloud project id (default: ``GOOGLE_CLOUD_PROJECT``)."""
    location: str = "us-central1"
    """Region of the Cloud Tasks queue and of the Cloud Scheduler jobs."""
    tasks_queue: str = "wfe-steps"
    """Cloud Tasks queue id; the full name is built from project and location."""
    tasks_queue_shards: int = Field(default=1, ge=1, le=64)
    """Queues a tenant's step tasks are spread over: ``tasks_queue``, then ``-1``, ``-2``...
    suffixed ids; each tenant's go to one of them (docs/flow-control.md, "Fairness")."""
    execute_step_url: str = ""
    """URL of the ``execute-step`` function: every task is an HTTP POST to it."""
    trigger_handler_url: str = ""
    """Base URL of the ``trigger-handler`` function, which Scheduler jobs call."""
    tasks_service_account: str = ""
    """Service account whose OIDC token Cloud Tasks sends (empty: no token)."""
    tasks_audience: str = ""
    """Audience of that token (default: ``execute_step_url``)."""
    scheduler_service_account: str = ""
    """Service account whose OIDC token Cloud Scheduler sends (empty: no token)."""
    scheduler_audience: str = ""
    """Audience of that token (default: ``trigger_handler_url``)."""
    pubsub_service_account: str = ""
    """Service account whose OIDC token Pub/Sub push subscriptions send to the
    trigger-handler (Terraform's ``pubsub-push`` account)."""
    pubsub_audience: str = ""
    """Audience of that token (default: ``trigger_handler_url``)."""
    scheduler_jobs: bool = True
    """The ``create`` function keeps Cloud Scheduler jobs in line with the workflows'
    schedules (needs ``trigger_handler_url``). False where no Cloud Scheduler exists
    (the emulators: the dev server runs schedules with its local cron)."""
    dispatch_deadline_seconds: float = Field(default=600.0, ge=15.0, le=1800.0)
    """How long Cloud Tasks waits for execute-step to answer (Cloud Tasks: 15 s..30 min)."""
    lifecycle_topic: str = ""
    """Topic of execution lifecycle events for other services (empty: none published)."""
    firestore_database: str = "(default)"
    """Firestore database id."""
    tasks_emulator_host: str = ""
    """``host:port`` of a Cloud Tasks emulator (insecure channel, no credentials). The
    Firestore and Pub/Sub emulators are named by the SDKs' own variables,
    ``FIRESTORE_EMULATOR_HOST`` and ``PUBSUB_EMULATOR_HOST``."""


def _default_prices() -> dict[str, tuple[float, float]]:
    return {
        "gemini-2.0-flash": (0.10, 0.40),
        "gemini-2.0-flash-lite": (0.075, 0.30),
        "gemini-2.5-flash": (0.30, 2.50),
        "gemini-2.5-pro": (1.25, 10.0),
    }


class AiSettings(_Group):
    """AI steps (docs/ai.md): decision and llm; nothing here connects at startup."""

    env_prefix: ClassVar[str] = "WFE_AI_"

    provider: Literal["none", "vertex"] = "none"
    """``none``: no model is configured (the offline default: AI nodes route by history,
    llm steps replay recordings). ``vertex``: Gemini on Vertex AI."""
    model: str = "gemini-2.0-flash"
    """Default model of AI nodes and llm steps (a step may name another)."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    """Time limit of one model call; an AI node takes its fallback when it runs out."""
    location: str = ""
    """Vertex AI region (default: ``gcp.location``)."""
    project: str = ""
    """Project billed for Vertex AI calls (default: ``gcp.project``, then
    GOOGLE_CLOUD_PROJECT)."""
    max_output_tokens: int = Field(default=2048, ge=1, le=65_536)
    prices: Annotated[dict[str, tuple[float, float]], BeforeValidator(_json_object)] = Field(
        default_factory=_default_prices
    )
    """USD per million (input, output) tokens by model; JSON in ``WFE_AI_PRICES``."""
    model_aliases: Annotated[dict[str, str], BeforeValidator(_json_object)] = Field(
        default_factory=dict
    )
    """Model aliases a step's ``model`` may name, JSON in ``WFE_AI_MODEL_ALIASES``:
    ``{"fast": "gemini-2.5-flash"}`` (a tenant moves versions without editing workflows)."""
    execution_max_tokens: int | None = Field(default=None, ge=1)
    """Default token budget of one execution's model calls (a step may set its own)."""
    execution_max_cost_usd: float | None = Field(default=None, gt=0)
    history_seed: int = 0
    """Seed of the history router: the same seed and history give the same choices."""
    history_exploration: float = Field(default=1.0, gt=0, le=100)
    """Prior pseudo-counts per branch of the history router: more explores longer."""
    history_window: int = Field(default=200, ge=1, le=5000)
    """Latest finished executions of a workflow the history router learns from."""
    recordings_dir: str = ""
    """Folder of ``*.recording.json`` model recordings replayed when no model is configured
    (``wfe run FILE`` and ``wfe dev`` use the folder of the examples)."""


_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("wfe_settings_env", default=None)
"""The mapping ``Settings.from_env`` reads instead of the process environment."""


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Reads the flat ``WFE_*`` variables into the nested groups."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """One top-level field (a value or a whole group) as ``__call__`` reads it."""
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        env = _ENV.get()
        return _nest(_renamed(os.environ if env is None else env), prefixed=True)


class Settings(BaseSettings):
    """Everything the composition root needs to pick and configure adapters."""

    model_config = SettingsConfigDict(env_prefix="WFE_", extra="forbid")

    backend: Literal["local", "gcp"] = "local"
    """``local``: SQLite + in-process queue and bus. ``gcp``: Firestore, Cloud Tasks, Pub/Sub."""
    tenant: str = "default"
    """Tenant of requests that name none."""
    api_keys: CommaList = Field(default_factory=list)
    """API keys as ``<sha256 of "salt:key">:<subject>:<tenant>:<role>`` entries; when set,
    every request needs one (``X-API-Key`` or ``Authorization: Bearer``). Empty: local
    development mode (no credentials, ``X-Tenant`` picks the tenant)."""
    api_key_salt: str = ""
    id_token_audience: CommaList = Field(default_factory=list)
    """Audiences of the Google-signed ID tokens end users may present instead of an API
    key (``Authorization: Bearer <ID token>``); empty: ID tokens are not accepted."""
    id_token_principals: CommaList = Field(default_factory=list)
    """Who an ID token's (verified) email is: ``<email>:<tenant>:<role>`` entries; any
    other email is refused (``UNKNOWN_PRINCIPAL``)."""
    token_verifier: Literal["auto", "google", "dev", "none"] = "auto"
    """Keys that sign the ID tokens the services accept (internal endpoints and end
    users): ``google`` (Google's published certificates), ``dev`` (a key pair of this
    process, or ``dev_key_file``), ``auto`` (google for ``backend=gcp``, dev for local).
    ``none`` stops checking the internal endpoints (emulators that send no tokens): it
    needs ``allow_unauthenticated`` and logs a warning at every start."""
    dev_key_file: str = ""
    """PEM RSA private key of the ``dev`` verifier (shared with whoever mints test
    tokens); empty: a key generated at startup."""
    trigger_binding_key: str = ""
    """Secret that signs the tenant of trigger URLs (``?tenant=T&binding=...``) the
    trigger manager creates; empty: trigger calls naming a tenant are refused."""
    allow_unauthenticated: bool = False
    """gcp mode: serve the public functions without credentials (everyone is an owner of
    the tenant ``X-Tenant`` names). Off: create and status-stream refuse to start
    without ``WFE_API_KEYS``. Only for emulators and throwaway projects; every start
    logs a warning."""
    stream_token_key: str = ""
    """Key of the stream tokens browsers open streams with (``POST /api/v1/stream-tokens``);
    empty: derived from ``api_key_salt``, or drawn per process when that is empty too."""
    stream_token_ttl_seconds: float = Field(default=60.0, gt=0, le=3600)
    """How long a stream token may open its stream."""
    graphql_introspection: bool = True
    """GraphQL ``__schema``/``__type`` queries and GraphiQL (off in production)."""
    allowed_origins: CommaList = Field(default_factory=list)
    """Browser origins besides a service's own that may call it (CORS for the streams,
    state-changing requests, WebSockets); ``*`` for any. Comma-separated."""
    event_topic: str = "workflow-events"
    trace_exporter: Literal["none", "console", "otlp", "gcp"] = "none"
    """Where OpenTelemetry spans go: ``none`` (ids in logs and hops, nothing exported),
    ``console`` (stderr), ``otlp`` (``OTEL_EXPORTER_OTLP_*``) or ``gcp`` (Cloud Trace)."""
    log_level: str = "INFO"
    """Level of the JSON log lines (``DEBUG`` ... ``CRITICAL``)."""
    engine: EngineTuning = Field(default_factory=EngineTuning)
    """Step execution and sweeping (``WFE_CHAIN_COMMIT_STEPS``, ...)."""
    local: LocalSettings = Field(default_factory=LocalSettings)
    """The embedded backend (``WFE_DB_PATH``, ``WFE_WORKERS``, ...)."""
    gcp: GcpSettings = Field(default_factory=GcpSettings)
    """The cloud backend (``WFE_PROJECT``, ``WFE_EXECUTE_STEP_URL``, ...)."""
    ai: AiSettings = Field(default_factory=AiSettings)
    """AI steps (``WFE_AI_PROVIDER``, ``WFE_AI_MODEL``, ...)."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Rate limits (``WFE_RATE_LIMITS``, ``WFE_LIMIT_*``, ``WFE_TENANT_LIMITS``)."""

    def __init__(self, **values: Any) -> None:
        """Validate ``values`` over the environment; ``InputInvalid`` names the variable."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _invalid(exc) from exc

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the flat variables (no dotenv, no secrets folder)."""
        return (init_settings, _FlatEnvSource(settings_cls))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``env`` (default: the process environment), then apply ``overrides``
        named like the variables without ``WFE_`` (None values are skipped)."""
        token = _ENV.set(os.environ if env is None else env)
        try:
            return cls(**_nest(overrides, prefixed=False))
        finally:
            _ENV.reset(token)

    @classmethod
    def defaults(cls) -> Settings:
        """Every default, whatever the environment holds."""
        return cls.from_env({})

    @classmethod
    def local_mode(cls, db_path: str = ":memory:", **overrides: object) -> Settings:
        """Local-mode settings on ``db_path`` and the defaults (tests, benchmarks);
        ``overrides`` as in ``from_env``; the environment is not read."""
        return cls.from_env({}, db_path=db_path, **overrides)

    def with_overrides(self, **overrides: object) -> Settings:
        """A validated copy with ``overrides`` (named as in ``from_env``) applied."""
        return type(self).from_env({}, **{**_flatten(self.model_dump()), **overrides})

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every variable name and the attribute it sets (``WFE_AI_MODEL``: ``ai.model``)."""
        return {variable: ".".join(filter(None, path)) for variable, path in _VARIABLES.items()}

    @classmethod
    def former_names(cls) -> dict[str, str]:
        """Earlier names of variables, still read when the current name is not set."""
        return dict(_FORMER_NAMES)


def _group_of(name: str) -> type[_Group] | None:
    annotation = Settings.model_fields[name].annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, _Group) else None


def _variables() -> Iterator[tuple[str, tuple[str | None, str]]]:
    for name in Settings.model_fields:
        group = _group_of(name)
        if group is None:
            yield f"WFE_{name.upper()}", (None, name)
        else:
            for field in group.model_fields:
                yield f"{group.env_prefix}{field.upper()}", (name, field)


_VARIABLES: dict[str, tuple[str | None, str]] = dict(_variables())
"""Variable name -> (group or None, field)."""
_BY_PATH = {path: variable for variable, path in _VARIABLES.items()}
assert len(_BY_PATH) == len(_VARIABLES), "two settings share a variable name"

_FORMER_NAMES = {"WFE_STREAM_ALLOWED_ORIGINS": "WFE_ALLOWED_ORIGINS"}
"""Former name -> current name; deployments that set the former keep working."""
assert set(_FORMER_NAMES.values()) <= set(_VARIABLES), "a former name of no variable"


def _renamed(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env`` with the former names read as their current ones (the current one wins)."""
    found = {new: env[old] for old, new in _FORMER_NAMES.items() if old in env and new not in env}
    return {**env, **found} if found else env


def _nest(flat: Mapping[str, object], *, prefixed: bool) -> dict[str, Any]:
    """Group ``WFE_*`` variables (``prefixed``) or override names (not) by attribute."""
    values: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        variable = key if prefixed else f"WFE_{key.upper()}"
        path = _VARIABLES.get(variable)
        if path is None:
            if prefixed:
                continue  # another program's variable, or one the code reads itself
            raise TypeError(f"unknown setting {key!r}")
        group, field = path
        if group is None:
            values[field] = value
        else:
            values.setdefault(group, {})[field] = value
    return values


def _flatten(values: Mapping[str, Any]) -> dict[str, object]:
    """The inverse of ``_nest(..., prefixed=False)``."""
    flat: dict[str, object] = {}
    for variable, (group, field) in _VARIABLES.items():
        value = values[field] if group is None else values[group][field]
        flat[variable.removeprefix("WFE_").lower()] = value
    return flat


def _invalid(exc: ValidationError) -> InputInvalid:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    variable = _BY_PATH.get((loc[0], loc[1]) if len(loc) > 1 else ("", ""))
    variable = variable or _BY_PATH.get((None, loc[0] if loc else ""), ".".join(loc))
    return InputInvalid(f"setting {variable}: {first['msg']}", code="INVALID_SETTINGS")
