output "queue" {
  description = "The step queue (id and name)."
  value       = module.workflow_engine.queue
}

output "secrets" {
  description = "Secret ids to add values to."
  value       = module.workflow_engine.secrets
}

output "service_accounts" {
  description = "Service account emails."
  value       = module.workflow_engine.service_accounts
}

output "service_urls" {
  description = "URLs of the four services."
  value       = module.workflow_engine.service_urls
}

output "topics" {
  description = "Lifecycle, triggers and dead-letter topics."
  value       = module.workflow_engine.topics
}
