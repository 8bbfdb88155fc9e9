# The Cloud Tasks queue of step runs (the code's WFE_TASKS_QUEUE). Every task is an
# HTTP POST to execute-step with an OIDC token of the tasks invoker account.

resource "google_cloud_tasks_queue" "steps" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-steps"

  rate_limits {
    max_dispatches_per_second = var.tasks_config.max_dispatches_per_second
    max_concurrent_dispatches = var.tasks_config.max_concurrent_dispatches
  }

  # Cloud Tasks retries every answer outside 2xx: transient failures (503) and also a
  # payload execute-step cannot decode (400). max_attempts bounds both; the engine's
  # own step retries are new tasks and do not count here.
  retry_config {
    max_attempts       = var.tasks_config.max_attempts
    max_retry_duration = var.tasks_config.max_retry_duration
    min_backoff        = var.tasks_config.min_backoff
    max_backoff        = var.tasks_config.max_backoff
    max_doublings      = var.tasks_config.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.tasks_config.logging_sampling_ratio
  }
}
