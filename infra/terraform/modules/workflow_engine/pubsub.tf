# Topics: execution lifecycle events for other services (the code's
# WFE_LIFECYCLE_TOPIC), the triggers topic workflows listen on, and the dead-letter
# topic of the push subscriptions. Event triggers: one push subscription per topic,
# to trigger-handler's /pubsub with an OIDC token of the push account; the
# trigger-handler matches each message against the active workflows.

locals {
  trigger_topics = merge(
    { "${var.name_prefix}-triggers" = google_pubsub_topic.triggers.id },
    {
      for topic in var.pubsub_config.trigger_topics :
      element(split("/", topic), length(split("/", topic)) - 1) => (
        startswith(topic, "projects/") ? topic : "projects/${var.project_id}/topics/${topic}"
      )
    },
  )
  publish_topics = {
    for topic in var.pubsub_config.publish_topics :
    topic => startswith(topic, "projects/") ? topic : "projects/${var.project_id}/topics/${topic}"
  }
}

resource "google_pubsub_topic" "lifecycle" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; lifecycle events carry ids and statuses, never secrets (they are redacted before any event is recorded).
  project                    = var.project_id
  name                       = "${var.name_prefix}-lifecycle"
  labels                     = var.labels
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "triggers" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; payloads are workflow inputs chosen by the publisher.
  project = var.project_id
  name    = "${var.name_prefix}-triggers"
  labels  = var.labels
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption, as for the topics it takes messages from.
  project = var.project_id
  name    = "${var.name_prefix}-dead-letter"
  labels  = var.labels
}

resource "google_pubsub_subscription" "trigger" {
  for_each = local.trigger_topics

  project                    = var.project_id
  name                       = "${each.key}-to-${local.service_names["trigger-handler"]}"
  topic                      = each.value
  labels                     = var.labels
  ack_deadline_seconds       = var.pubsub_config.ack_deadline_seconds
  message_retention_duration = var.pubsub_config.message_retention

  expiration_policy {
    ttl = "" # never expires, even when no message arrives for a month
  }

  retry_policy {
    minimum_backoff = var.pubsub_config.minimum_backoff
    maximum_backoff = var.pubsub_config.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pubsub_config.max_delivery_attempts
  }

  push_config {
    # A raw push body does not name its topic: trigger-handler reads it from ?topic=.
    push_endpoint = "${local.urls["trigger-handler"]}/pubsub?topic=${urlencode(each.value)}"
    oidc_token {
      service_account_email = google_service_account.sa["pubsub-push"].email
      audience              = local.urls["trigger-handler"]
    }
  }
}

# Dead letters stay readable for a week (a topic without a subscription keeps nothing).
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}
