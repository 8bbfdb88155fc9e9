"""Least privilege: each identity has exactly the roles its code uses, every grant comes
from the one table in iam.tf, and internal services have no public invoker."""

from __future__ import annotations

import re

import pytest
from _terraform import FUNCTIONS, ROOT, module

Grant = tuple[str, str, str]
"""(role, target, when)."""

EXPECTED: dict[str, set[Grant]] = {
    "create": {
        # Firestore: workflows and executions (condition: the engine's database only).
        ("roles/datastore.user", "project", "always"),
        # Spans to Cloud Trace (WFE_TRACE_EXPORTER=gcp, the default of app_config).
        ("roles/cloudtrace.agent", "project", "cloud_trace"),
        # The trigger manager reconciles Cloud Scheduler jobs (custom role below).
        ("custom:scheduler-reconciler", "project", "always"),
        # Starting and controlling executions enqueues step tasks...
        ("roles/cloudtasks.enqueuer", "queue", "always"),
        # ...with an OIDC token of the tasks invoker, and jobs with the scheduler's.
        ("roles/iam.serviceAccountUser", "sa:tasks", "always"),
        ("roles/iam.serviceAccountUser", "sa:scheduler", "always"),
        # Lifecycle events of committed transactions (execution.started).
        ("roles/pubsub.publisher", "topic:lifecycle", "always"),
        ("roles/secretmanager.secretAccessor", "secret:api-keys", "always"),
        ("roles/secretmanager.secretAccessor", "secret:api-key-salt", "always"),
        # Signs the tenant into the URLs of the Scheduler jobs it creates.
        ("roles/secretmanager.secretAccessor", "secret:trigger-binding-key", "always"),
    },
    "execute-step": {
        ("roles/datastore.user", "project", "always"),
        ("roles/cloudtrace.agent", "project", "cloud_trace"),
        ("roles/aiplatform.user", "project", "vertex"),
        ("roles/cloudtasks.enqueuer", "queue", "always"),
        ("roles/iam.serviceAccountUser", "sa:tasks", "always"),
        ("roles/pubsub.publisher", "topic:lifecycle", "always"),
        # publish steps: the module's triggers topic and the declared publish topics.
        ("roles/pubsub.publisher", "topic:triggers", "always"),
        ("roles/pubsub.publisher", "topics:publish", "always"),
    },
    "trigger-handler": {
        ("roles/datastore.user", "project", "always"),
        ("roles/cloudtrace.agent", "project", "cloud_trace"),
        ("roles/cloudtasks.enqueuer", "queue", "always"),
        ("roles/iam.serviceAccountUser", "sa:tasks", "always"),
        ("roles/pubsub.publisher", "topic:lifecycle", "always"),
        ("roles/secretmanager.secretAccessor", "secrets:webhook", "always"),
        # Checks the tenant binding of trigger URLs.
        ("roles/secretmanager.secretAccessor", "secret:trigger-binding-key", "always"),
    },
    "status-stream": {
        # Reads and listens only.
        ("roles/datastore.viewer", "project", "always"),
        ("roles/cloudtrace.agent", "project", "cloud_trace"),
        ("roles/secretmanager.secretAccessor", "secret:api-keys", "always"),
        ("roles/secretmanager.secretAccessor", "secret:api-key-salt", "always"),
    },
    "tasks": {("roles/run.invoker", "service:execute-step", "always")},
    "scheduler": {("roles/run.invoker", "service:trigger-handler", "always")},
    "pubsub-push": {("roles/run.invoker", "service:trigger-handler", "always")},
    # The retention job calls POST /api/v1/admin/retention:sweep on create.
    "retention": {("roles/run.invoker", "service:create", "always")},
    "pubsub-agent": {
        ("roles/iam.serviceAccountTokenCreator", "sa:pubsub-push", "always"),
        ("roles/pubsub.publisher", "topic:dead-letter", "always"),
        ("roles/pubsub.subscriber", "subscriptions:triggers", "always"),
    },
    "public": {
        ("roles/run.invoker", "service:create", "public_api"),
        ("roles/run.invoker", "service:status-stream", "public_api"),
    },
}

SCHEDULER_PERMISSIONS = {
    "create_job": "cloudscheduler.jobs.create",
    "get_job": "cloudscheduler.jobs.get",
    "list_jobs": "cloudscheduler.jobs.list",
    "update_job": "cloudscheduler.jobs.update",
    "delete_job": "cloudscheduler.jobs.delete",
    "pause_job": "cloudscheduler.jobs.pause",
    "resume_job": "cloudscheduler.jobs.enable",
}
"""Cloud Scheduler RPC -> the permission it needs."""

INTERNAL = ("execute-step", "trigger-handler")


def declared() -> dict[str, set[Grant]]:
    grants = module().locals["grants"]
    return {
        principal: {(row["role"], row["on"], row["when"]) for row in rows}
        for principal, rows in grants.items()
    }


def test_grants_are_exactly_the_expected_table() -> None:
    actual = declared()
    assert set(actual) == set(EXPECTED)
    for principal, grants in EXPECTED.items():
        assert actual[principal] == grants, (
            principal,
            {"unexpected": actual[principal] - grants, "missing": grants - actual[principal]},
        )


def test_every_function_has_its_own_service_account() -> None:
    accounts = module().locals["service_accounts"]
    assert set(FUNCTIONS) <= set(accounts)
    assert {"tasks", "scheduler", "pubsub-push"} <= set(accounts), "one per OIDC caller"
    account = module().resource("google_service_account", "sa")
    assert account["for_each"] == "${local.service_accounts}"
    assert account["account_id"] == "${var.name_prefix}-${each.key}"


def test_every_iam_resource_is_additive_and_comes_from_the_table() -> None:
    for (kind, name), body in module().resources.items():
        assert not kind.endswith(("_iam_binding", "_iam_policy")), (
            f"{kind}.{name}: authoritative IAM would remove grants made outside this module"
        )
        if kind.endswith("_iam_member"):
            assert "local.grants_by_kind[" in body["for_each"], f"{kind}.{name}"
            assert body["member"] == "${local.members[each.value.principal]}", f"{kind}.{name}"
            assert body["role"] == "${each.value.role}" or "custom:" in body["role"]


def test_grants_by_kind_covers_every_target_kind_of_the_table() -> None:
    kinds_by_resource = {
        body["for_each"]: kind
        for (kind, _), body in module().resources.items()
        if kind.endswith("_iam_member")
    }
    covered = set(re.findall(r'grants_by_kind\["(\w+)"\]', " ".join(kinds_by_resource)))
    targets = {grant[1] for grants in EXPECTED.values() for grant in grants}
    prefixes = {target.split(":")[0] for target in targets}
    expanded = {"topics": "publish", "subscriptions": "subscription", "secrets": "secret"}
    assert {expanded.get(prefix, prefix) for prefix in prefixes} <= covered


def test_public_access_is_only_allusers_on_the_public_services() -> None:
    text = "\n".join(p.read_text() for p in sorted(module().directory.glob("*.tf")))
    assert "allAuthenticatedUsers" not in text
    assert text.count('"allUsers"') == 1, "allUsers appears once: local.members.public"
    members = module().locals["members"]
    assert 'public = "allUsers"' in members
    for principal, grants in EXPECTED.items():
        for _, target, _ in grants:
            if target.split(":")[-1] in INTERNAL:
                assert principal != "public", f"{target} must not be public"


@pytest.mark.parametrize(
    ("service", "callers"),
    [("execute-step", {"tasks"}), ("trigger-handler", {"scheduler", "pubsub-push"})],
)
def test_internal_services_are_invoked_only_by_their_callers(
    service: str, callers: set[str]
) -> None:
    invokers = {
        principal
        for principal, grants in declared().items()
        for role, target, _ in grants
        if role == "roles/run.invoker" and target == f"service:{service}"
    }
    assert invokers == callers


def test_oidc_identities_are_the_invokers() -> None:
    locals_ = module().locals
    assert 'sa["tasks"]' in locals_["common_env"]["WFE_TASKS_SERVICE_ACCOUNT"]
    create = locals_["service_env"]["create"]
    assert 'sa["scheduler"]' in create["WFE_SCHEDULER_SERVICE_ACCOUNT"]
    push = module().resource("google_pubsub_subscription", "trigger")["push_config"][0]
    oidc = push["oidc_token"][0]
    assert oidc["service_account_email"] == '${google_service_account.sa["pubsub-push"].email}'
    assert oidc["audience"] == '${local.urls["trigger-handler"]}'


def test_datastore_roles_are_conditioned_on_the_engine_database() -> None:
    grant = module().resource("google_project_iam_member", "grant")
    condition = grant["dynamic"][0]["condition"]
    assert 'startswith(each.value.role, "roles/datastore.")' in condition["for_each"]
    assert "local.firestore_condition" in condition["content"][0]["expression"]
    assert (
        "databases/${google_firestore_database.main.name}"
        in (module().locals["firestore_condition"])
    )


def test_scheduler_role_has_exactly_the_permissions_the_reconciler_calls() -> None:
    source = (ROOT / "shared" / "adapters" / "cloud_scheduler.py").read_text()
    calls = set(re.findall(r'_rpc\(\s*"(\w+)"', source))
    assert {"create_job", "list_jobs"} <= calls, "parser broke"
    assert calls <= set(SCHEDULER_PERMISSIONS), calls - set(SCHEDULER_PERMISSIONS)
    role = module().locals["custom_roles"]["scheduler-reconciler"]
    assert set(role["permissions"]) == {SCHEDULER_PERMISSIONS[call] for call in calls}


@pytest.mark.parametrize(
    ("adapter", "pattern", "methods", "role"),
    [
        ("cloud_tasks_queue.py", r"client\.(\w+)\(", {"create_task"}, "roles/cloudtasks.enqueuer"),
        ("pubsub_bus.py", r"_get_client\(\)\.(\w+)\(", {"publish"}, "roles/pubsub.publisher"),
    ],
)
def test_queue_and_topic_roles_cover_what_the_adapters_call(
    adapter: str, pattern: str, methods: set[str], role: str
) -> None:
    """enqueuer is cloudtasks.tasks.create; publisher is pubsub.topics.publish."""
    source = (ROOT / "shared" / "adapters" / adapter).read_text()
    assert set(re.findall(pattern, source)) == methods
    assert any(role == grant[0] for grants in EXPECTED.values() for grant in grants)
