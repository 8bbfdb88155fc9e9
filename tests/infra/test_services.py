"""Terraform deploys every function the way its code needs: entry point, signature,
ingress, and every setting the code reads in gcp mode as an environment variable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from _terraform import (
    ENVIRONMENTS,
    FUNCTIONS,
    ROOT,
    block,
    module,
    optional_defaults,
    tfvars,
)

from shared.settings import GcpSettings, Settings

ALL = frozenset(FUNCTIONS)
ENTRYPOINT = ROOT / "infra" / "docker" / "entrypoint.sh"

# -- settings: every variable of Settings is decided here, so a new one fails until it is --
# Keys are the variable names without ``WFE_``, lower case (``ai_model``: WFE_AI_MODEL).

VARIABLES = Settings.variables()
"""``WFE_AI_MODEL`` -> ``ai.model``: every variable the settings read."""
SETTINGS = {name.removeprefix("WFE_").lower() for name in VARIABLES}
"""The keys of the tables below: one per variable."""
BY_ATTRIBUTE = {path: name.removeprefix("WFE_").lower() for name, path in VARIABLES.items()}

SET_IN_TERRAFORM: dict[str, frozenset[str]] = {
    # Every service builds the runtime with build_gcp (store, queue, bus).
    "backend": ALL,
    "project": ALL,
    "location": ALL,
    "tenant": ALL,
    "firestore_database": ALL,
    "tasks_queue": ALL,
    "tasks_queue_shards": ALL,
    "execute_step_url": ALL,
    "tasks_service_account": ALL,
    "tasks_audience": ALL,
    "dispatch_deadline_seconds": ALL,
    "lifecycle_topic": ALL,
    "http_allowed_hosts": frozenset({"execute-step"}),
    # The Cloud Scheduler reconciler runs where workflows change: the management API.
    # ...and trigger-handler checks the tokens of the jobs and push subscriptions.
    "trigger_handler_url": frozenset({"create", "trigger-handler"}),
    "scheduler_service_account": frozenset({"create", "trigger-handler"}),
    "scheduler_audience": frozenset({"create", "trigger-handler"}),
    "pubsub_service_account": frozenset({"trigger-handler"}),
    "pubsub_audience": frozenset({"trigger-handler"}),
    "scheduler_jobs": frozenset({"create"}),
    # The tenant binding of trigger URLs: signed by create, checked by trigger-handler.
    "trigger_binding_key": frozenset({"create", "trigger-handler"}),
    # The retention sweep runs in create (POST /api/v1/admin/retention:sweep).
    "execution_retention_days": frozenset({"create"}),
    "audit_retention_days": frozenset({"create"}),
    # End users may present Google-signed ID tokens on the public services.
    "id_token_audience": frozenset({"create", "status-stream"}),
    "id_token_principals": frozenset({"create", "status-stream"}),
    "trace_exporter": ALL,
    "graphql_introspection": frozenset({"create", "status-stream"}),
    # End users authenticate on the public services (from Secret Manager).
    "api_keys": frozenset({"create", "status-stream"}),
    "api_key_salt": frozenset({"create", "status-stream"}),
    # Browser origins the public services accept besides their own.
    "allowed_origins": frozenset({"create", "status-stream"}),
    # AI steps run in execute-step.
    "ai_provider": frozenset({"execute-step"}),
    "ai_model": frozenset({"execute-step"}),
    "ai_project": frozenset({"execute-step"}),
    "ai_location": frozenset({"execute-step"}),
}
"""Settings Terraform sets, and the services that need each."""

DEFAULTED = {
    "allow_unauthenticated": "false: the public functions refuse to start without API keys",
    "token_verifier": "auto: Google's certificates in gcp mode",
    "stream_token_key": "derived from WFE_API_KEY_SALT, which create and status-stream share",
    "stream_token_ttl_seconds": "a minute to open a stream suits browsers",
    "rate_limits": "on: every request and start is counted",
    "limit_principal_rps": "limits shipped with the code; services_config can set them",
    "limit_principal_burst": "limits shipped with the code",
    "limit_tenant_rps": "limits shipped with the code",
    "limit_tenant_burst": "limits shipped with the code",
    "limit_start_rps": "limits shipped with the code",
    "limit_start_burst": "limits shipped with the code",
    "limit_webhook_rps": "limits shipped with the code",
    "limit_webhook_burst": "limits shipped with the code",
    "limit_shards": "16 shards: about one write per second per Firestore document",
    "tenant_limits": "no per-tenant overrides until an operator sets some",
    "tenant_cache_seconds": "five seconds: a revoked key is refused within it",
    "sweep_interval_seconds": "only a long-lived process sweeps (runtime.start(sweep=True))",
    "sweep_grace_seconds": "tuning; the default suits Cloud Tasks' delivery delays",
    "retention_interval_seconds": "only wfe dev loops; the cloud's Cloud Scheduler job calls",
    "chain_commit_steps": "engine tuning",
    "max_chain_steps": "engine tuning",
    "default_step_timeout_seconds": "engine tuning; steps set their own",
    "event_topic": "not read by the code",
    "log_level": "INFO suits the cloud",
    "ai_temperature": "model tuning; steps set their own",
    "ai_timeout_seconds": "model tuning; steps set their own",
    "ai_max_output_tokens": "model tuning; steps set their own",
    "ai_prices": "price table shipped with the code",
    "ai_model_aliases": "no aliases until an operator sets some (services_config env)",
    "ai_execution_max_tokens": "budget; none unless a step sets one",
    "ai_execution_max_cost_usd": "budget; none unless a step sets one",
    "ai_history_seed": "history router tuning",
    "ai_history_exploration": "history router tuning",
    "ai_history_window": "history router tuning",
}
"""Settings whose defaults suit the cloud (services_config.<name>.env can still set them)."""

LOCAL_ONLY = {
    "db_path": "SQLite store",
    "sqlite_synchronous": "SQLite store",
    "workers": "in-process dispatcher",
    "duplicate_rate": "in-process dispatcher",
    "tasks_emulator_host": "Cloud Tasks emulator",
    "dev_key_file": "the dev token verifier (local mode, tests)",
    "ai_recordings_dir": "replayed model recordings (wfe run, wfe dev)",
}

CLOUD_WIRING = [
    "shared/composition/gcp.py",
    "shared/adapters/cloud_tasks_queue.py",
    "shared/adapters/cloud_scheduler.py",
    "shared/adapters/pubsub_bus.py",
    "shared/adapters/firestore_store.py",
    "shared/ai/models.py",
]
"""Code that runs only with backend=gcp (or reads the cloud settings)."""


def env_names(service: str) -> set[str]:
    """Environment variables Terraform sets on one service (plain and from secrets)."""
    locals_ = module().locals
    plain = set(locals_["common_env"]) | set(locals_["service_env"][service])
    secret = locals_["secret_env"][service]
    if isinstance(secret, str):  # an expression (merge of a map and a for): its literal names
        return plain | {n for n in re.findall(r"\b(WFE_[A-Z0-9_]+)", secret) if n[-1] != "_"}
    return plain | (set(secret) if isinstance(secret, dict) else set())


def settings_read_by(paths: list[str]) -> set[str]:
    """Settings the code reads, as ``settings.gcp.project`` or through a group variable
    (``gcp = settings.gcp`` then ``gcp.project``)."""
    groups = "|".join({path.split(".")[0] for path in VARIABLES.values() if "." in path})
    found: set[str] = set()
    for relative in paths:
        path = ROOT / relative
        if not path.exists():
            continue
        source = path.read_text()
        for group, attribute in re.findall(rf"\b(?:settings\.)?({groups})\.(\w+)", source):
            found.add(BY_ATTRIBUTE.get(f"{group}.{attribute}", ""))
        for attribute in re.findall(r"\bsettings\.(\w+)", source):
            found.add(BY_ATTRIBUTE.get(attribute, ""))
    return found - {""}


def gcp_block_fields() -> set[str]:
    """The settings of the ``gcp`` group."""
    return {BY_ATTRIBUTE[f"gcp.{field}"] for field in GcpSettings.model_fields}


def literal_env_names(*, besides_settings: bool = True) -> set[str]:
    """``WFE_*`` names the code reads itself (os.environ), besides the Settings fields."""
    names: set[str] = set()
    for path in (ROOT / "shared").rglob("*.py"):
        if path.name != "settings.py":
            names |= set(re.findall(r'"(WFE_[A-Z0-9_]+)"', path.read_text()))
    names = {n for n in names if not n.endswith("_")}  # prefixes, such as WFE_SECRET_
    return names - set(VARIABLES) if besides_settings else names


def test_every_setting_is_decided_once() -> None:
    tables = [set(SET_IN_TERRAFORM), set(DEFAULTED), set(LOCAL_ONLY)]
    assert set.union(*tables) == SETTINGS, (
        "classify each new setting in tests/infra/test_services.py: SET_IN_TERRAFORM "
        "(and set it in infra/terraform/modules/workflow_engine/functions.tf), DEFAULTED or "
        "LOCAL_ONLY",
        SETTINGS ^ set.union(*tables),
    )
    assert sum(len(t) for t in tables) == len(set.union(*tables)), "a field in two tables"


def test_the_gcp_block_of_settings_is_set_in_terraform() -> None:
    block_fields = gcp_block_fields()
    assert {"project", "tasks_queue", "execute_step_url"} <= block_fields, "parser broke"
    assert block_fields - set(LOCAL_ONLY) <= set(SET_IN_TERRAFORM)


def test_settings_the_cloud_wiring_reads_are_set_or_knowingly_defaulted() -> None:
    read = settings_read_by(CLOUD_WIRING)
    assert {"project", "execute_step_url"} <= read, "parser broke"
    decided = set(SET_IN_TERRAFORM) | set(DEFAULTED) | set(LOCAL_ONLY)
    assert read <= decided, read - decided


@pytest.mark.parametrize("service", FUNCTIONS)
def test_each_service_gets_the_settings_it_needs(service: str) -> None:
    names = env_names(service)
    needed = {f"WFE_{f.upper()}" for f, services in SET_IN_TERRAFORM.items() if service in services}
    assert needed <= names, f"{service} lacks {sorted(needed - names)}"


CLIENT_ONLY = {"WFE_API_KEY": "wfe tenants --url: the operator's key, read by the CLI"}
"""Variables only the command line reads, on an operator's machine, never a service."""


def test_environment_variables_the_code_reads_itself_are_set() -> None:
    literal = literal_env_names() - set(CLIENT_ONLY)
    assert "WFE_PROJECT" in literal_env_names(besides_settings=False), "parser broke"
    everywhere = set().union(*(env_names(s) for s in FUNCTIONS))
    assert literal <= everywhere, literal - everywhere


def test_terraform_sets_no_variable_the_code_does_not_read() -> None:
    known = set(VARIABLES) | set(Settings.former_names()) | literal_env_names()
    for service in FUNCTIONS:
        unknown = {n for n in env_names(service) if n.startswith("WFE_")} - known
        assert not unknown, f"{service}: {unknown} (a typo?)"


def test_settings_values_point_at_the_resources() -> None:
    locals_ = module().locals
    common = locals_["common_env"]
    assert common["WFE_BACKEND"] == "gcp"
    assert common["WFE_TASKS_QUEUE"] == "${google_cloud_tasks_queue.steps.name}"
    assert common["WFE_LIFECYCLE_TOPIC"] == "${google_pubsub_topic.lifecycle.name}"
    assert common["WFE_FIRESTORE_DATABASE"] == "${google_firestore_database.main.name}"
    assert common["WFE_EXECUTE_STEP_URL"] == '${local.urls["execute-step"]}'
    assert common["WFE_TASKS_AUDIENCE"] == common["WFE_EXECUTE_STEP_URL"]
    assert common["WFE_TASKS_SERVICE_ACCOUNT"] == '${google_service_account.sa["tasks"].email}'
    create = locals_["service_env"]["create"]
    assert create["WFE_TRIGGER_HANDLER_URL"] == '${local.urls["trigger-handler"]}'
    assert create["WFE_SCHEDULER_AUDIENCE"] == create["WFE_TRIGGER_HANDLER_URL"]
    assert create["WFE_SCHEDULER_SERVICE_ACCOUNT"] == (
        '${google_service_account.sa["scheduler"].email}'
    )


def test_secrets_reach_the_services_from_secret_manager() -> None:
    locals_ = module().locals
    secrets = set(locals_["api_secrets"]) | {"webhook-${name}"}
    for service in FUNCTIONS:
        refs = locals_["secret_env"][service]
        if isinstance(refs, dict):
            assert set(refs.values()) <= secrets, service
    dynamic = block(module().resource("google_cloud_run_v2_service", "function"), "template")
    containers = dynamic["containers"][0]["dynamic"]
    sources = [d["env"]["for_each"] for d in containers]
    assert sources == ["${local.env[each.key]}", "${local.secret_env[each.key]}"]
    secret_ref = containers[1]["env"]["content"][0]["value_source"][0]["secret_key_ref"][0]
    assert secret_ref["secret"] == "${google_secret_manager_secret.secret[env.value].secret_id}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_environment_overrides_the_settings_terraform_computes(env: str) -> None:
    computed = set(module().locals["common_env"])
    for service_env in module().locals["service_env"].values():
        computed |= set(service_env)
    for service, overrides in tfvars(env).get("services_config", {}).items():
        clash = set(overrides.get("env", {})) & computed
        assert not clash, f"{env}: services_config.{service}.env sets {clash} (ignored)"


# -- entry points and signatures ----------------------------------------------------------

DECORATORS = {
    "functions_framework.aio.http": ("http", True),
    "functions_framework.http": ("http", False),
    "functions_framework.aio.cloud_event": ("cloudevent", True),
    "functions_framework.cloud_event": ("cloudevent", False),
}
"""Decorator -> (signature type, ASGI)."""


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return ""


def function_signatures(path: Path) -> dict[str, tuple[str, bool]]:
    """Targets of one main.py: function name -> (signature type, ASGI)."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if _dotted(decorator) in DECORATORS:
                    found[node.name] = DECORATORS[_dotted(decorator)]
    return found


def module_assigns(path: Path, name: str) -> bool:
    return any(
        isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
        for node in ast.parse(path.read_text()).body
    )


def test_every_function_is_deployed_and_nothing_else() -> None:
    assert sorted(module().locals["functions"]) == FUNCTIONS
    assert set(FUNCTIONS) <= set(module().locals["service_accounts"]), "one account each"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_entry_point_matches_the_functions_signature(function: str) -> None:
    main = ROOT / "functions" / function / "main.py"
    script = ENTRYPOINT.read_text()
    branches = {
        name.strip(): command
        for names, command in re.findall(r"^([a-z| -]+)\)\n(.*?);;", script, re.M | re.S)
        for name in names.split("|")
    }
    assert function in branches, f"entrypoint.sh has no branch for {function}"
    command = branches[function]
    if "exec uvicorn" in command:
        assert module_assigns(main, "app"), f"{function}: uvicorn serves main:app"
        assert f"--app-dir functions/{function} main:app" in command
        return
    target = function.replace("-", "_")
    signatures = function_signatures(main)
    assert target in signatures, f"{main} has no functions-framework target {target}"
    signature, asgi = signatures[target]
    assert (signature, asgi) == ("http", True), "entrypoint.sh starts http targets with --asgi"
    assert "--asgi" in command and "--signature-type" not in command
    assert "tr '-' '_'" in script and '--source "functions/$function_name/main.py"' in command


def test_status_stream_runs_the_asgi_app_for_websockets() -> None:
    functions = module().locals["functions"]
    assert functions["status-stream"]["session_affinity"] is True
    defaults = functions["status-stream"]["defaults"]
    assert defaults["timeout_seconds"] == 3600, "Cloud Run's longest request (WebSockets)"
    assert all(not f["session_affinity"] for n, f in functions.items() if n != "status-stream")


def test_each_service_runs_its_function_from_the_one_image() -> None:
    service = module().resource("google_cloud_run_v2_service", "function")
    assert service["for_each"] == "${local.functions}"
    template = block(service, "template")
    assert template["service_account"] == "${google_service_account.sa[each.key].email}"
    container = template["containers"][0]
    assert container["image"] == "${var.image}"
    assert container["args"] == ["${each.key}"], "the entry point's argument is the function"
    for probe in ("startup_probe", "liveness_probe"):
        assert block(container, probe, "http_get")["path"] == "${each.value.health_path}"


def test_ingress_is_internal_where_only_google_calls() -> None:
    functions = module().locals["functions"]
    assert functions["execute-step"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert functions["trigger-handler"]["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert functions["create"]["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert functions["status-stream"]["ingress"] == "INGRESS_TRAFFIC_ALL"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_execute_step_outlives_the_dispatch_deadline(env: str) -> None:
    variables = module().variables
    deadline = int(
        optional_defaults(variables["tasks_config"]["type"])["dispatch_deadline_seconds"]
    )
    deadline = tfvars(env).get("tasks_config", {}).get("dispatch_deadline_seconds", deadline)
    timeout = module().locals["functions"]["execute-step"]["defaults"]["timeout_seconds"]
    overrides = tfvars(env).get("services_config", {}).get("execute-step", {})
    timeout = overrides.get("timeout_seconds", timeout)
    assert timeout > deadline, f"{env}: Cloud Run would end steps Cloud Tasks still waits for"


NOT_SECRET = {"WFE_ID_TOKEN_AUDIENCE", "WFE_ID_TOKEN_PRINCIPALS"}
"""Named like secrets, but public: who may present ID tokens, not a credential."""


def test_secrets_never_travel_as_plain_environment_variables() -> None:
    locals_ = module().locals
    plain = set(locals_["common_env"]).union(*map(set, locals_["service_env"].values()))
    secret_like = {n for n in plain if re.search(r"KEY|SALT|SECRET|TOKEN|PASSWORD", n)}
    secret_like -= NOT_SECRET
    assert not secret_like, f"{secret_like} must come from Secret Manager (secret_env)"
    versions = module().of_type("google_secret_manager_secret_version")
    assert not versions, "secret values stay out of the Terraform state"


def test_services_are_gen2_and_protected_from_deletion() -> None:
    service = module().resource("google_cloud_run_v2_service", "function")
    assert block(service, "template")["execution_environment"] == "EXECUTION_ENVIRONMENT_GEN2"
    assert service["deletion_protection"] == "${var.deletion_protection}"
    image = module().variables["image"]
    assert "@sha256:" in image["validation"][0]["condition"], "images are pinned by digest"
