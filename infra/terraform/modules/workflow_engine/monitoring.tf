# Log-based metrics from the services' logs and alert policies on them and on the
# built-in Cloud Run and Cloud Tasks metrics. The services log JSON lines in Cloud
# Logging's structured format (shared/observability): the filters match the entries'
# severity, the message texts the code logs (shared/api/tasks.py, shared/engine,
# the runtimes' sweepers) and their structured fields (jsonPayload.executionId, .code).

locals {
  service_filter = join(" OR ", [for name in values(local.service_names) : "resource.labels.service_name=\"${name}\""])

  log_metrics = {
    step-failures = {
      description = "Step tasks that failed for good (recorded; execute-step answered 2xx), by error code."
      filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["execute-step"]}\" AND severity>=ERROR AND jsonPayload.message:\"step task failed for good\" AND jsonPayload.executionId:*"
      labels      = { code = "EXTRACT(jsonPayload.code)" }
    }
    stuck-runs = {
      description = "Step runs committed but not enqueued (left to the sweeper), and failed sweeper passes: executions that stop progressing."
      filter      = "resource.type=\"cloud_run_revision\" AND (${local.service_filter}) AND severity>=WARNING AND (jsonPayload.message:\"the sweeper will retry\" OR jsonPayload.message:\"sweeper pass failed\")"
      labels      = {}
    }
    undecodable-tasks = {
      description = "Task deliveries execute-step could not decode (answered 400; retried until the queue's max attempts)."
      filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_names["execute-step"]}\" AND severity>=ERROR AND jsonPayload.message:\"undecodable task payload\""
      labels      = {}
    }
  }
}

resource "google_logging_metric" "metric" {
  for_each = local.log_metrics

  project          = var.project_id
  name             = "${var.name_prefix}-${each.key}"
  description      = each.value.description
  filter           = each.value.filter
  label_extractors = each.value.labels

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = "The entry's ${labels.key} field."
      }
    }
  }
}

resource "google_monitoring_alert_policy" "error_ratio" {
  count = var.alerts_config.enabled ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: 5xx answer ratio above ${var.alerts_config.error_ratio * 100}%"
  combiner              = "OR"
  notification_channels = var.alerts_config.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "5xx / all requests per service"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\" AND (${local.service_filter})"
      denominator_filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND (${local.service_filter})"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts_config.error_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A workflow engine service answers more than ${var.alerts_config.error_ratio * 100}% of its requests with 5xx. execute-step answers 503 for retryable errors (Cloud Tasks retries them): look for a Firestore, Cloud Tasks or Pub/Sub outage in the service's logs."
  }
}

resource "google_monitoring_alert_policy" "stuck_runs" {
  count = var.alerts_config.enabled ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: step runs not enqueued (stuck executions)"
  combiner              = "OR"
  notification_channels = var.alerts_config.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "stuck step runs in 10 minutes"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.metric["stuck-runs"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts_config.stuck_runs_per_10_min
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A step run was committed but its Cloud Task was not created (or a sweeper pass failed): its execution does not progress until a sweep re-enqueues it. Check Cloud Tasks quota and errors in the logs, then run a sweep."
  }
}

resource "google_monitoring_alert_policy" "step_failures" {
  count = var.alerts_config.enabled ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: permanent step failures"
  combiner              = "OR"
  notification_channels = var.alerts_config.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "step tasks failed for good in 5 minutes"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.metric["step-failures"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts_config.step_failures_per_5_min
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Many step tasks failed permanently (the failures are recorded on their executions): list failed executions with GET /api/v1/executions?status=failed."
  }
}

resource "google_monitoring_alert_policy" "queue_backlog" {
  count = var.alerts_config.enabled ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: step queue backlog"
  combiner              = "OR"
  notification_channels = var.alerts_config.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "tasks in ${google_cloud_tasks_queue.steps.name} above ${var.alerts_config.queue_depth} for 15 minutes"
    condition_threshold {
      filter          = "resource.type=\"cloud_tasks_queue\" AND resource.labels.queue_id=\"${google_cloud_tasks_queue.steps.name}\" AND metric.type=\"cloudtasks.googleapis.com/queue/depth\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts_config.queue_depth
      duration        = "900s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The step queue holds more tasks than usual for 15 minutes (tasks of waits scheduled ahead count too). Check execute-step's instance limit and errors, and the queue's rate limits (tasks_config)."
  }
}
