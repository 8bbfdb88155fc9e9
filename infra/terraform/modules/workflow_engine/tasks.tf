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

# Further queues for fairness between tenants (WFE_TASKS_QUEUE_SHARDS, see
# docs/flow-control.md, "Fairness"): with tasks_config.queue_shards = K, the code sends each
# tenant's tasks to one of K queues (the one above is shard 0), so a tenant flooding its
# queue uses that queue's rate limits while tenants on the others keep flowing. Each
# shard has the same rate limits and retries as the first; K = 1 (default) adds none.
# Lowering K leaves the removed queues' pending tasks to be dropped with them: drain
# first (or let the sweeper re-enqueue overdue runs into the remaining queues).
resource "google_cloud_tasks_queue" "shard" {
  count = var.tasks_config.queue_shards - 1

  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-steps-${count.index + 1}"

  rate_limits {
    max_dispatches_per_second = var.tasks_config.max_dispatches_per_second
    max_concurrent_dispatches = var.tasks_config.max_concurrent_dispatches
  }

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

# The sweeper: re-enqueues step runs whose task is overdue (an enqueue lost after a
# commit, a run whose instance was killed mid-step once its lease ends). execute-step
# also sweeps once when an instance starts. The job calls POST /sweep with an OIDC
# token of the tasks invoker account, the identity execute-step already admits (the
# code checks it: shared/api/identity.py). Its name stays outside the wfe- prefix of
# the jobs the code reconciles for workflow schedules, which would delete it.
resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = "sweep-${var.name_prefix}"
  description      = "Re-enqueue overdue step runs (POST /sweep on execute-step)."
  schedule         = var.tasks_config.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "120s"

  retry_config {
    retry_count = 0 # the next minute's run is the retry
  }

  http_target {
    http_method = "POST"
    uri         = "${local.urls["execute-step"]}/sweep"

    oidc_token {
      service_account_email = google_service_account.sa["tasks"].email
      audience              = local.urls["execute-step"]
    }
  }
}

# The retention sweep (docs/flow-control.md, "Retention"): deletes finished executions
# past their tenant's retention (storage quota released), old audit entries and idle
# rate-limit buckets. The job calls POST /api/v1/admin/retention:sweep on create with an
# OIDC token of the retention account, which create admits as a platform admin
# (WFE_ID_TOKEN_PRINCIPALS, functions.tf); a call works about 40 s and answers
# more: true when a backlog is left for the next one. Outside the wfe- prefix of the
# jobs the code reconciles, as the sweep above.
resource "google_cloud_scheduler_job" "retention" {
  project          = var.project_id
  region           = var.region
  name             = "retention-${var.name_prefix}"
  description      = "Delete executions past their retention (POST /api/v1/admin/retention:sweep on create)."
  schedule         = var.retention_config.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "120s"

  retry_config {
    retry_count = 0 # the next run is the retry (the sweep is idempotent)
  }

  http_target {
    http_method = "POST"
    uri         = "${local.urls["create"]}/api/v1/admin/retention:sweep"

    oidc_token {
      service_account_email = google_service_account.sa["retention"].email
      audience              = local.urls["create"]
    }
  }
}
