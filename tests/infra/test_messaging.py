"""Queues, topics, push delivery, alerts: what the code uses exists, and is configured the
way the code's answers need (checks checkov has no rule for)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from _terraform import ENVIRONMENTS, ROOT, block, module, optional_defaults, tfvars
from starlette.routing import Match

from shared import ports
from shared.api.triggers.routes import trigger_routes
from shared.observability import JsonFormatter, log_context


def test_the_queue_the_code_uses_exists() -> None:
    queue = module().resource("google_cloud_tasks_queue", "steps")
    assert module().locals["common_env"]["WFE_TASKS_QUEUE"] == (
        "${google_cloud_tasks_queue.steps.name}"
    )
    assert queue["location"] == "${var.region}", "the code builds the path from WFE_LOCATION"
    assert module().locals["common_env"]["WFE_LOCATION"] == "${var.region}"


def test_queue_retries_are_bounded() -> None:
    """execute-step answers 400 to an undecodable task and Cloud Tasks retries every
    non-2xx answer: only max_attempts stops such a task."""
    retry = block(module().resource("google_cloud_tasks_queue", "steps"), "retry_config")
    assert retry["max_attempts"] == "${var.tasks_config.max_attempts}"
    variable = module().variables["tasks_config"]
    default = int(optional_defaults(variable["type"])["max_attempts"])
    assert 1 <= default <= 100
    conditions = " ".join(v["condition"] for v in variable["validation"])
    assert "var.tasks_config.max_attempts >= 1" in conditions, "-1 (unlimited) is refused"
    for key in ("min_backoff", "max_backoff", "max_doublings"):
        assert retry[key] == f"${{var.tasks_config.{key}}}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_bounds_retries_and_rates(env: str) -> None:
    tasks = tfvars(env).get("tasks_config", {})
    assert 1 <= tasks.get("max_attempts", 1) <= 100
    assert 0 < tasks.get("max_dispatches_per_second", 1) <= 500
    assert 1 <= tasks.get("max_concurrent_dispatches", 1) <= 5000


def test_queue_has_rate_limits_and_logging() -> None:
    queue = module().resource("google_cloud_tasks_queue", "steps")
    limits = block(queue, "rate_limits")
    assert limits["max_dispatches_per_second"] == "${var.tasks_config.max_dispatches_per_second}"
    assert limits["max_concurrent_dispatches"] == "${var.tasks_config.max_concurrent_dispatches}"
    assert "sampling_ratio" in block(queue, "stackdriver_logging_config")


def test_the_topics_the_code_uses_exist() -> None:
    topics = module().of_type("google_pubsub_topic")
    assert {"lifecycle", "triggers", "dead_letter"} <= set(topics)
    assert module().locals["common_env"]["WFE_LIFECYCLE_TOPIC"] == (
        "${google_pubsub_topic.lifecycle.name}"
    )


def test_push_subscriptions_reach_the_trigger_handler_route() -> None:
    subscription = module().resource("google_pubsub_subscription", "trigger")
    assert subscription["for_each"] == "${local.trigger_topics}"
    endpoint = block(subscription, "push_config")["push_endpoint"]
    path = ports.PUBSUB_PATH
    assert endpoint == f'${{local.urls["trigger-handler"]}}{path}?topic=${{urlencode(each.value)}}'
    routes = (ROOT / "shared" / "api" / "triggers" / "routes.py").read_text()
    assert f'"{path}"' in routes and 'query_params.get("topic")' in routes
    assert "google_pubsub_topic.triggers.id" in module().locals["trigger_topics"]


def test_push_subscriptions_dead_letter_and_never_expire() -> None:
    subscription = module().resource("google_pubsub_subscription", "trigger")
    dead_letter = block(subscription, "dead_letter_policy")
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert block(subscription, "expiration_policy")["ttl"] == ""
    assert "minimum_backoff" in block(subscription, "retry_policy")
    keeper = module().resource("google_pubsub_subscription", "dead_letter")
    assert keeper["topic"] == "${google_pubsub_topic.dead_letter.id}", "dead letters are kept"


def test_scheduler_jobs_call_a_route_the_trigger_handler_serves() -> None:
    spec = ports.ScheduleSpec("wf-1", "default", "* * * * *")
    assert spec.job_name.startswith(ports.JOB_PREFIX)
    assert spec.target_path.startswith("/schedule/")
    scope = {"type": "http", "method": "POST", "path": spec.target_path, "root_path": ""}
    matched = [r for r in trigger_routes() if r.matches(scope)[0] == Match.FULL]
    assert [r.path for r in matched] == ["/schedule/{workflow_id}"]


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "exception": 40, "critical": 50}
_SEVERITIES = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_LOG_CALL = re.compile(r"\.(debug|info|warning|error|exception|critical)\(\s*f?\"([^\"]*)\"")


def _log_calls() -> list[tuple[Path, int, str]]:
    """(file, level, message format) of every ``log.<level>("...")`` call in shared/."""
    calls = []
    for path in (ROOT / "shared").rglob("*.py"):
        for level, message in _LOG_CALL.findall(path.read_text()):
            calls.append((path, _LEVELS[level], message))
    return calls


def _phrases(metric: dict[str, Any]) -> set[str]:
    return set(re.findall(r'jsonPayload\.message:\\?"([^"\\]+)', metric["filter"]))


def _fields(metric: dict[str, Any]) -> set[str]:
    """The structured fields a metric filters on or extracts (``message`` aside)."""
    named = re.findall(r"jsonPayload\.(\w+)", metric["filter"])
    named += re.findall(r"jsonPayload\.(\w+)", " ".join(metric["labels"].values()))
    return set(named) - {"message"}


def test_log_metrics_match_messages_the_code_logs_at_their_severity() -> None:
    """A filter on a message nobody logs, or logs below the filter's severity, would keep
    an alert silent forever."""
    calls = _log_calls()
    for name, metric in module().locals["log_metrics"].items():
        assert "textPayload" not in metric["filter"], f"{name}: the services log JSON"
        (threshold,) = re.findall(r"severity>=(\w+)", metric["filter"])
        phrases = _phrases(metric)
        assert phrases, name
        for phrase in phrases:
            levels = [level for _, level, message in calls if phrase in message]
            assert levels, f"{name}: nothing logs {phrase!r}"
            assert min(levels) >= _SEVERITIES[threshold], f"{name}: {phrase!r} below {threshold}"


def test_log_metric_fields_are_logged_with_their_messages() -> None:
    """``jsonPayload.executionId`` and the extracted ``code`` exist only if the code that
    logs the message passes them, and the JSON lines put them at the entry's top level."""
    calls = _log_calls()
    for name, metric in module().locals["log_metrics"].items():
        fields = _fields(metric)
        for phrase in _phrases(metric):
            sources = {path.read_text() for path, _, message in calls if phrase in message}
            for field in fields:
                assert all(re.search(rf"\b{field}\b", source) for source in sources), (
                    f"{name}: {phrase!r} is logged without {field}"
                )
        record = logging.LogRecord("wfe", logging.ERROR, __file__, 1, "%s", (name,), None)
        record.json_fields = {field: "x" for field in fields}
        entry = json.loads(JsonFormatter("execute-step").format(record))
        assert entry["severity"] == "ERROR"
        assert all(entry[field] == "x" for field in fields), entry


def test_the_engine_logs_carry_the_execution_id_the_metrics_filter_on() -> None:
    record = logging.LogRecord("shared.engine", logging.WARNING, __file__, 1, "m", (), None)
    with log_context(execution_id="exec-1", step_id="charge"):
        entry = json.loads(JsonFormatter("execute-step").format(record))
    assert (entry["executionId"], entry["stepId"]) == ("exec-1", "charge")


def test_step_failure_metric_counts_by_error_code() -> None:
    metric = module().resource("google_logging_metric", "metric")
    assert metric["label_extractors"] == "${each.value.labels}"
    labels = module().locals["log_metrics"]["step-failures"]["labels"]
    assert labels == {"code": "EXTRACT(jsonPayload.code)"}


def test_alert_policies_cover_errors_stuck_executions_and_backlog() -> None:
    policies = module().of_type("google_monitoring_alert_policy")
    assert {"error_ratio", "stuck_runs", "queue_backlog", "step_failures"} <= set(policies)
    backlog = block(policies["queue_backlog"], "conditions", "condition_threshold")
    assert "cloudtasks.googleapis.com/queue/depth" in backlog["filter"]
    assert "google_cloud_tasks_queue.steps.name" in backlog["filter"]
    errors = block(policies["error_ratio"], "conditions", "condition_threshold")
    assert "response_code_class" in errors["filter"] and "5xx" in errors["filter"]
    assert "denominator_filter" in errors
    stuck = block(policies["stuck_runs"], "conditions", "condition_threshold")
    assert 'google_logging_metric.metric["stuck-runs"].name' in stuck["filter"]
    for policy in policies.values():
        assert policy["notification_channels"] == "${var.alerts_config.notification_channels}"


def test_a_scheduled_sweep_calls_execute_step_as_the_tasks_invoker() -> None:
    """Issue 11, item 3: nothing called /sweep in the cloud, so a run whose task was lost
    waited for an operator; the job must reach the route with an identity the code admits."""
    job = module().resource("google_cloud_scheduler_job", "sweep")
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == '${local.urls["execute-step"]}/sweep'
    token = block(target, "oidc_token")
    assert token["service_account_email"] == '${google_service_account.sa["tasks"].email}'
    assert token["audience"] == '${local.urls["execute-step"]}'
    assert not str(job["name"]).startswith(ports.JOB_PREFIX)  # reconciled jobs: wfe-*
    assert 'Route("/sweep"' in (ROOT / "shared" / "api" / "tasks.py").read_text()


def test_queue_shards_are_the_queues_the_code_sends_to() -> None:
    """WFE_TASKS_QUEUE_SHARDS=K: the code sends to ``<queue>-1 .. <queue>-(K-1)`` beside the
    first queue; Terraform creates those K-1 queues, configured like the first, with the
    same IAM grants, from one variable the code also reads."""
    from shared.adapters.cloud_tasks_queue import shard_queue_ids

    steps = module().resource("google_cloud_tasks_queue", "steps")
    shard = module().resource("google_cloud_tasks_queue", "shard")
    assert shard["count"] == "${var.tasks_config.queue_shards - 1}"
    base = steps["name"]
    assert shard["name"] == base + "-${count.index + 1}"
    assert shard_queue_ids("q", 3) == ["q", "q-1", "q-2"]  # the same naming
    for name in ("rate_limits", "retry_config", "stackdriver_logging_config"):
        assert block(shard, name) == block(steps, name), name
    assert module().locals["common_env"]["WFE_TASKS_QUEUE_SHARDS"] == (
        "${tostring(var.tasks_config.queue_shards)}"
    )
    grant = module().resource("google_cloud_tasks_queue_iam_member", "shard_grant")
    assert "google_cloud_tasks_queue.shard[each.value.shard]" in grant["name"]
    variable = module().variables["tasks_config"]
    assert int(optional_defaults(variable["type"])["queue_shards"]) == 1
    conditions = " ".join(v["condition"] for v in variable["validation"])
    assert "var.tasks_config.queue_shards >= 1" in conditions
