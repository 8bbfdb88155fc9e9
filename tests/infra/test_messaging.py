"""Queues, topics, push delivery, alerts: what the code uses exists, and is configured the
way the code's answers need (checks checkov has no rule for)."""

from __future__ import annotations

import re

import pytest
from _terraform import ENVIRONMENTS, ROOT, block, module, optional_defaults, tfvars

from shared.app import trigger_manager


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
    path = trigger_manager.PUBSUB_PATH
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
    spec = trigger_manager.ScheduleSpec("wf-1", "default", "* * * * *")
    assert spec.job_name.startswith(trigger_manager.JOB_PREFIX)
    assert spec.target_path.startswith("/schedule/")
    routes = (ROOT / "shared" / "api" / "triggers" / "routes.py").read_text()
    assert 'parts[0] == "schedule"' in routes


def test_log_metrics_match_messages_the_code_logs() -> None:
    """A filter on a message nobody logs would keep an alert silent forever."""
    sources = "\n".join(p.read_text() for p in (ROOT / "shared").rglob("*.py"))
    for name, metric in module().locals["log_metrics"].items():
        phrases = set(re.findall(r'textPayload:\\?"([^"\\]+)', metric["filter"]))
        assert phrases, name
        for phrase in phrases:
            assert phrase in sources, f"{name}: nothing logs {phrase!r}"


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
