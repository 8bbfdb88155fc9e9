output "firestore_database" {
  description = "Firestore database id (WFE_FIRESTORE_DATABASE)."
  value       = google_firestore_database.main.name
}

output "queue" {
  description = "The step queue: id (projects/P/locations/L/queues/Q) and name (WFE_TASKS_QUEUE)."
  value = {
    id   = google_cloud_tasks_queue.steps.id
    name = google_cloud_tasks_queue.steps.name
  }
}

output "secrets" {
  description = "Secret ids by key; add their values with gcloud secrets versions add."
  value       = { for key, secret in google_secret_manager_secret.secret : key => secret.secret_id }
}

output "service_accounts" {
  description = "Service account emails by function or caller."
  value       = { for key, account in google_service_account.sa : key => account.email }
}

output "service_urls" {
  description = "Deterministic URLs of the four services (what the services are configured with)."
  value       = local.urls
}

output "service_uris" {
  description = "URLs Cloud Run reports for the four services."
  value       = { for name, service in google_cloud_run_v2_service.function : name => service.uri }
}

output "topics" {
  description = "Topic ids: lifecycle events (WFE_LIFECYCLE_TOPIC), triggers, dead letters."
  value = {
    lifecycle   = google_pubsub_topic.lifecycle.id
    triggers    = google_pubsub_topic.triggers.id
    dead_letter = google_pubsub_topic.dead_letter.id
  }
}

output "trigger_subscriptions" {
  description = "Push subscriptions to trigger-handler by topic."
  value       = { for key, subscription in google_pubsub_subscription.trigger : key => subscription.id }
}
