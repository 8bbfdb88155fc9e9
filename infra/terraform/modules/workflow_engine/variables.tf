# Inputs of the workflow engine module, sorted by name. Every `*_config` object has
# optional attributes with documented defaults, so an environment sets only what differs.

variable "ai_config" {
  description = "AI steps (decision, llm): provider `none` (offline routing and replay) or `vertex` (Gemini on Vertex AI; grants roles/aiplatform.user to execute-step)."
  type = object({
    provider = optional(string, "none")
    model    = optional(string, "gemini-2.0-flash")
    location = optional(string)
  })
  default  = {}
  nullable = false
  validation {
    condition     = contains(["none", "vertex"], var.ai_config.provider)
    error_message = "ai_config.provider must be none or vertex."
  }
}

variable "alerts_config" {
  description = "Alert policies: notification channel ids and thresholds (error ratio of 5xx answers, stuck step runs, queue depth, permanent step failures)."
  type = object({
    enabled                 = optional(bool, true)
    notification_channels   = optional(list(string), [])
    error_ratio             = optional(number, 0.05)
    queue_depth             = optional(number, 10000)
    step_failures_per_5_min = optional(number, 20)
    stuck_runs_per_10_min   = optional(number, 0)
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.alerts_config.error_ratio > 0 && var.alerts_config.error_ratio < 1
    error_message = "alerts_config.error_ratio must be between 0 and 1 (exclusive)."
  }
  validation {
    condition     = var.alerts_config.queue_depth >= 1 && var.alerts_config.step_failures_per_5_min >= 0 && var.alerts_config.stuck_runs_per_10_min >= 0
    error_message = "alerts_config thresholds must be non-negative (queue_depth at least 1)."
  }
}

variable "app_config" {
  description = "Application settings: tenant of requests without one, whether create and status-stream are public (end users authenticate with API keys or ID tokens), GraphQL introspection, browser origins of the status stream, hosts http steps may reach over plain http or private addresses, where OpenTelemetry spans go (gcp: Cloud Trace; none: trace ids in logs and task hops only), the audiences of the Google-signed ID tokens end users may present (the code's WFE_ID_TOKEN_AUDIENCE) and who each email is, as email:tenant:role entries (WFE_ID_TOKEN_PRINCIPALS)."
  type = object({
    tenant                 = optional(string, "default")
    public_api             = optional(bool, true)
    graphql_introspection  = optional(bool, false)
    stream_allowed_origins = optional(list(string), [])
    http_allowed_hosts     = optional(list(string), [])
    trace_exporter         = optional(string, "gcp")
    id_token_audiences     = optional(list(string), [])
    id_token_principals    = optional(list(string), [])
  })
  default  = {}
  nullable = false
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.app_config.tenant))
    error_message = "app_config.tenant must be 1 to 64 letters, digits, '_' or '-'."
  }
  validation {
    condition     = contains(["gcp", "none"], var.app_config.trace_exporter)
    error_message = "app_config.trace_exporter is gcp (Cloud Trace) or none."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud Run services and secrets (set false only for throwaway environments)."
  type        = bool
  default     = true
  nullable    = false
}

variable "firestore_config" {
  description = "Firestore (native mode) database: id (the code's WFE_FIRESTORE_DATABASE), location (default: the region), point-in-time recovery, delete protection, daily backups kept for backup_retention (null: none), TTL policies as collection group => timestamp field."
  type = object({
    database_id            = optional(string, "(default)")
    location_id            = optional(string)
    point_in_time_recovery = optional(bool, true)
    delete_protection      = optional(bool, true)
    backup_retention       = optional(string)
    ttl_fields             = optional(map(string), {})
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.firestore_config.database_id == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_config.database_id))
    error_message = "firestore_config.database_id must be (default) or 4 to 63 lowercase letters, digits and '-'."
  }
  validation {
    condition     = var.firestore_config.backup_retention == null || can(regex("^[0-9]+s$", coalesce(var.firestore_config.backup_retention, "0s")))
    error_message = "firestore_config.backup_retention is a duration in seconds, such as \"1209600s\"."
  }
}

variable "image" {
  description = "Container image of the four services, built by cloudbuild.yaml; pin it by digest (REGION-docker.pkg.dev/PROJECT/REPO/workflow-engine@sha256:...) so every environment runs the same bytes."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[^ @]+(@sha256:[a-f0-9]{64}|:[A-Za-z0-9_.-]{1,128})$", var.image))
    error_message = "image must be REGISTRY/PATH@sha256:DIGEST (preferred) or REGISTRY/PATH:TAG."
  }
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, service accounts, queue, topics, secrets). Scheduler jobs are always named wfe-{workflowId} by the code, so deploy one environment per project and region."
  type        = string
  default     = "wfe"
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,9}$", var.name_prefix))
    error_message = "name_prefix must be 2 to 10 lowercase letters, digits or '-', starting with a letter (service account ids are at most 30 characters)."
  }
}

variable "project_id" {
  description = "Project that hosts the environment."
  type        = string
  nullable    = false
}

variable "pubsub_config" {
  description = "Pub/Sub: topics whose messages start workflows (event triggers) besides the module's own triggers topic, as short names in this project or projects/P/topics/T; topics publish steps may publish to; push delivery and dead-lettering settings."
  type = object({
    trigger_topics        = optional(list(string), [])
    publish_topics        = optional(list(string), [])
    ack_deadline_seconds  = optional(number, 60)
    max_delivery_attempts = optional(number, 10)
    minimum_backoff       = optional(string, "10s")
    maximum_backoff       = optional(string, "600s")
    message_retention     = optional(string, "604800s")
  })
  default  = {}
  nullable = false
  validation {
    condition = alltrue([
      for topic in concat(var.pubsub_config.trigger_topics, var.pubsub_config.publish_topics) :
      can(regex("^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/)?[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$", topic))
    ])
    error_message = "pubsub_config topics must be topic names or projects/PROJECT/topics/NAME."
  }
  validation {
    condition     = var.pubsub_config.max_delivery_attempts >= 5 && var.pubsub_config.max_delivery_attempts <= 100
    error_message = "pubsub_config.max_delivery_attempts must be within 5..100 (Pub/Sub's limits)."
  }
  validation {
    condition     = var.pubsub_config.ack_deadline_seconds >= 10 && var.pubsub_config.ack_deadline_seconds <= 600
    error_message = "pubsub_config.ack_deadline_seconds must be within 10..600."
  }
}

variable "region" {
  description = "Region of the Cloud Run services, the Cloud Tasks queue and the Cloud Scheduler jobs (the code's WFE_LOCATION)."
  type        = string
  nullable    = false
}

variable "retention_config" {
  description = "Retention (docs/flow-control.md, \"Retention\"): days finished executions are kept before the sweep deletes them (the code's WFE_EXECUTION_RETENTION_DAYS; a tenant's retention_days quota overrides it; 0 keeps them forever), days audit entries are kept (WFE_AUDIT_RETENTION_DAYS; 0: forever) and the Cloud Scheduler schedule of the sweep job (UTC)."
  type = object({
    execution_days = optional(number, 30)
    audit_days     = optional(number, 365)
    schedule       = optional(string, "17 * * * *")
  })
  default  = {}
  nullable = false
  validation {
    condition     = floor(var.retention_config.execution_days) == var.retention_config.execution_days && var.retention_config.execution_days >= 0 && var.retention_config.execution_days <= 3650
    error_message = "retention_config.execution_days must be a whole number within 0..3650 (0: kept forever)."
  }
  validation {
    condition     = floor(var.retention_config.audit_days) == var.retention_config.audit_days && var.retention_config.audit_days >= 0 && var.retention_config.audit_days <= 36500
    error_message = "retention_config.audit_days must be a whole number within 0..36500 (0: kept forever)."
  }
}

variable "secrets_config" {
  description = "Names of the webhook secrets to create (each becomes secret PREFIX-webhook-NAME, read by trigger-handler as environment variable WFE_SECRET_WEBHOOK_NAME, so a workflow's secretRef is env:WFE_SECRET_WEBHOOK_NAME). Terraform creates the secrets, never their values."
  type = object({
    webhook_secrets = optional(list(string), [])
  })
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for name in var.secrets_config.webhook_secrets : can(regex("^[a-z][a-z0-9-]{0,39}$", name))])
    error_message = "secrets_config.webhook_secrets names must be 1 to 40 lowercase letters, digits or '-'."
  }
}

variable "services_config" {
  description = "Per-service overrides keyed by function name (create, execute-step, trigger-handler, status-stream): instances, cpu, memory, request concurrency, request timeout, CPU throttling between requests, extra environment variables. Unset attributes take the defaults in functions.tf."
  type = map(object({
    min_instances   = optional(number)
    max_instances   = optional(number)
    cpu             = optional(string)
    memory          = optional(string)
    concurrency     = optional(number)
    timeout_seconds = optional(number)
    cpu_idle        = optional(bool)
    env             = optional(map(string), {})
  }))
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for name in keys(var.services_config) : contains(["create", "execute-step", "trigger-handler", "status-stream"], name)])
    error_message = "services_config keys must be create, execute-step, trigger-handler or status-stream."
  }
  validation {
    condition = alltrue([
      for service in values(var.services_config) :
      service.timeout_seconds == null || (coalesce(service.timeout_seconds, 1) >= 1 && coalesce(service.timeout_seconds, 1) <= 3600)
    ])
    error_message = "services_config timeout_seconds must be within 1..3600 (Cloud Run's limit)."
  }
  validation {
    condition = alltrue([
      for service in values(var.services_config) :
      alltrue([for name in keys(service.env) : !contains(["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"], name)])
    ])
    error_message = "services_config env cannot set PORT, K_SERVICE, K_REVISION or K_CONFIGURATION (reserved by Cloud Run)."
  }
}

variable "tasks_config" {
  description = "Cloud Tasks queue of step runs: retries (every answer outside 2xx is retried, an undecodable task answered 400 included, until max_attempts), rate limits, dispatch deadline (how long a task waits for execute-step; its request timeout must be longer) and the share of task attempts logged."
  type = object({
    max_attempts              = optional(number, 50)
    max_retry_duration        = optional(string, "0s")
    min_backoff               = optional(string, "1s")
    max_backoff               = optional(string, "600s")
    max_doublings             = optional(number, 6)
    max_dispatches_per_second = optional(number, 200)
    max_concurrent_dispatches = optional(number, 500)
    dispatch_deadline_seconds = optional(number, 600)
    logging_sampling_ratio    = optional(number, 1)
    sweep_schedule            = optional(string, "* * * * *")
    queue_shards              = optional(number, 1)
  })
  default  = {}
  nullable = false
  validation {
    condition     = var.tasks_config.max_attempts >= 1 && var.tasks_config.max_attempts <= 100
    error_message = "tasks_config.max_attempts must be within 1..100: unlimited attempts (-1) would retry a poison task forever."
  }
  validation {
    condition     = var.tasks_config.dispatch_deadline_seconds >= 15 && var.tasks_config.dispatch_deadline_seconds <= 1800
    error_message = "tasks_config.dispatch_deadline_seconds must be within 15..1800 (Cloud Tasks' limits)."
  }
  validation {
    condition     = var.tasks_config.max_dispatches_per_second > 0 && var.tasks_config.max_dispatches_per_second <= 500
    error_message = "tasks_config.max_dispatches_per_second must be within (0, 500]."
  }
  validation {
    condition     = var.tasks_config.max_concurrent_dispatches >= 1 && var.tasks_config.max_concurrent_dispatches <= 5000
    error_message = "tasks_config.max_concurrent_dispatches must be within 1..5000."
  }
  validation {
    condition     = var.tasks_config.logging_sampling_ratio >= 0 && var.tasks_config.logging_sampling_ratio <= 1
    error_message = "tasks_config.logging_sampling_ratio must be within 0..1."
  }
  validation {
    condition     = var.tasks_config.queue_shards >= 1 && var.tasks_config.queue_shards <= 64 && floor(var.tasks_config.queue_shards) == var.tasks_config.queue_shards
    error_message = "tasks_config.queue_shards must be a whole number within 1..64 (WFE_TASKS_QUEUE_SHARDS)."
  }
}

variable "tenants" {
  description = "Tenants of the environment and their quotas (docs/tenants.md), by tenant id (a slug), written to Firestore at deploy time as documents tenants/{id} in the shape the code's Firestore tenant registry reads. A null quota is no limit. Terraform owns the tenants it declares (an admin API change to one is reverted by the next apply); API keys are never declared here: issue them with the admin API or `wfe tenants keys issue --url`, so no secret enters the state."
  type = map(object({
    display_name = optional(string, "")
    disabled     = optional(bool, false)
    quotas = optional(object({
      max_running_executions = optional(number)
      max_queued_executions  = optional(number)
      steps_per_second       = optional(number)
      steps_burst            = optional(number)
      max_workflows          = optional(number)
      max_definition_bytes   = optional(number)
      max_storage_bytes      = optional(number)
      retention_days         = optional(number)
    }), {})
  }))
  default  = {}
  nullable = false
  validation {
    condition     = alltrue([for id in keys(var.tenants) : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", id))])
    error_message = "tenants: every id is 1 to 63 lowercase letters, digits and inner hyphens."
  }
  validation {
    condition = alltrue(flatten([
      for tenant in values(var.tenants) : [
        for name, value in tenant.quotas : value == null ? true : value >= 0
      ]
    ]))
    error_message = "tenants: quotas are null (no limit) or not negative."
  }
  validation {
    condition = alltrue([
      for tenant in values(var.tenants) :
      tenant.quotas.retention_days == null ? true : (tenant.quotas.retention_days >= 1 && tenant.quotas.retention_days <= 3650)
    ])
    error_message = "tenants: quotas.retention_days is null (the deployment's default) or within 1..3650."
  }
  validation {
    condition     = alltrue([for tenant in values(var.tenants) : length(tenant.display_name) <= 200])
    error_message = "tenants: display_name is at most 200 characters."
  }
}
