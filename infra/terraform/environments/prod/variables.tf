# Passed through to the module, whose variables.tf documents each attribute.

variable "ai_config" {
  description = "AI steps: provider (none | vertex), model, location."
  type        = any
  default     = {}
}

variable "alerts_config" {
  description = "Alert policies: notification channels and thresholds."
  type        = any
  default     = {}
}

variable "app_config" {
  description = "Tenant, public API, GraphQL introspection, stream origins, http allowed hosts."
  type        = any
  default     = {}
}

variable "deletion_protection" {
  description = "Refuse to destroy the services and secrets."
  type        = bool
  default     = true
}

variable "firestore_config" {
  description = "Firestore database id, location, PITR, delete protection, backups, TTL fields."
  type        = any
  default     = {}
}

variable "image" {
  description = "Container image by digest (REGION-docker.pkg.dev/PROJECT/REPO/workflow-engine@sha256:...), set by the pipeline."
  type        = string
}

variable "labels" {
  description = "Labels of every resource (the environment label is added)."
  type        = map(string)
  default     = {}
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "wfe"
}

variable "project_id" {
  description = "Project of this environment."
  type        = string
}

variable "pubsub_config" {
  description = "Trigger and publish topics, push delivery and dead-lettering."
  type        = any
  default     = {}
}

variable "region" {
  description = "Region of the services, the queue and the scheduler jobs."
  type        = string
}

variable "retention_config" {
  description = "Days executions and audit entries are kept, and the sweep's schedule."
  type        = any
  default     = {}
}

variable "secrets_config" {
  description = "Webhook secrets to create."
  type        = any
  default     = {}
}

variable "services_config" {
  description = "Per-service instances, cpu, memory, concurrency, timeout, extra env."
  type        = any
  default     = {}
}

variable "tasks_config" {
  description = "Step queue retries, rate limits and dispatch deadline."
  type        = any
  default     = {}
}

variable "tenants" {
  description = "Tenants and their quotas, written to Firestore (docs/tenants.md)."
  type        = any
  default     = {}
}
