# The four functions as Cloud Run services of one image. The container's entry point
# (infra/docker/entrypoint.sh) takes the function name as its argument and starts
# functions-framework (--target <name with underscores> --asgi) or, for status-stream,
# uvicorn serving the ASGI app (WebSockets need a long-lived server).

locals {
  functions = {
    create = {
      description      = "Management API: REST under /api/v1, GraphQL queries and mutations."
      ingress          = "INGRESS_TRAFFIC_ALL"
      health_path      = "/health"
      session_affinity = false
      defaults = {
        min_instances   = 0
        max_instances   = 20
        cpu             = "1"
        memory          = "1Gi"
        concurrency     = 80
        timeout_seconds = 60
        cpu_idle        = true
      }
    }
    execute-step = {
      description      = "Cloud Tasks target: runs the steps of one task delivery."
      ingress          = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      health_path      = "/healthz"
      session_affinity = false
      # CPU stays allocated after the answer: lifecycle events are published by a
      # background task once the step's transaction committed.
      defaults = {
        min_instances   = 0
        max_instances   = 50
        cpu             = "1"
        memory          = "1Gi"
        concurrency     = 40
        timeout_seconds = 900
        cpu_idle        = false
      }
    }
    trigger-handler = {
      description      = "Pub/Sub pushes and Cloud Scheduler ticks become executions."
      ingress          = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      health_path      = "/healthz"
      session_affinity = false
      defaults = {
        min_instances   = 0
        max_instances   = 20
        cpu             = "1"
        memory          = "512Mi"
        concurrency     = 80
        timeout_seconds = 120
        cpu_idle        = true
      }
    }
    status-stream = {
      description      = "Live execution events over WebSocket, GraphQL subscriptions and SSE."
      ingress          = "INGRESS_TRAFFIC_ALL"
      health_path      = "/health"
      session_affinity = true
      # Connections last up to the request timeout (Cloud Run's maximum, 60 min);
      # clients resume from their last sequence number when it ends.
      defaults = {
        min_instances   = 0
        max_instances   = 20
        cpu             = "1"
        memory          = "1Gi"
        concurrency     = 250
        timeout_seconds = 3600
        cpu_idle        = true
      }
    }
  }

  service_settings = {
    for name, function in local.functions : name => {
      for key, default in function.defaults :
      key => coalesce(try(var.services_config[name][key], null), default)
    }
  }

  # Settings every service reads in gcp mode (shared/settings.py): each one builds the
  # runtime with build_gcp (Firestore store, Cloud Tasks queue, Pub/Sub bus).
  common_env = {
    WFE_BACKEND                   = "gcp"
    WFE_PROJECT                   = var.project_id
    WFE_LOCATION                  = var.region
    WFE_TENANT                    = var.app_config.tenant
    WFE_TRACE_EXPORTER            = var.app_config.trace_exporter
    WFE_FIRESTORE_DATABASE        = google_firestore_database.main.name
    WFE_TASKS_QUEUE               = google_cloud_tasks_queue.steps.name
    WFE_TASKS_QUEUE_SHARDS        = tostring(var.tasks_config.queue_shards)
    WFE_EXECUTE_STEP_URL          = local.urls["execute-step"]
    WFE_TASKS_SERVICE_ACCOUNT     = google_service_account.sa["tasks"].email
    WFE_TASKS_AUDIENCE            = local.urls["execute-step"]
    WFE_DISPATCH_DEADLINE_SECONDS = tostring(var.tasks_config.dispatch_deadline_seconds)
    WFE_LIFECYCLE_TOPIC           = google_pubsub_topic.lifecycle.name
    WFE_HTTP_ALLOWED_HOSTS        = join(",", var.app_config.http_allowed_hosts)
  }

  # What only some services read.
  service_env = {
    create = {
      WFE_TRIGGER_HANDLER_URL       = local.urls["trigger-handler"]
      WFE_SCHEDULER_SERVICE_ACCOUNT = google_service_account.sa["scheduler"].email
      WFE_SCHEDULER_AUDIENCE        = local.urls["trigger-handler"]
      WFE_SCHEDULER_JOBS            = "true"
      WFE_GRAPHQL_INTROSPECTION     = tostring(var.app_config.graphql_introspection)
      WFE_ALLOWED_ORIGINS           = join(",", var.app_config.stream_allowed_origins)
      # End users' ID tokens, and the retention job's: an ID token for create's URL of
      # the retention account, a platform admin (tenant *), the only caller of
      # POST /api/v1/admin/retention:sweep besides platform admins' keys (tasks.tf).
      WFE_ID_TOKEN_AUDIENCE = join(",", distinct(concat(var.app_config.id_token_audiences, [local.urls["create"]])))
      WFE_ID_TOKEN_PRINCIPALS = join(",", concat(
        var.app_config.id_token_principals,
        ["${google_service_account.sa["retention"].email}:*:viewer"],
      ))
      WFE_EXECUTION_RETENTION_DAYS = tostring(var.retention_config.execution_days)
      WFE_AUDIT_RETENTION_DAYS     = tostring(var.retention_config.audit_days)
    }
    execute-step = {
      WFE_AI_PROVIDER = var.ai_config.provider
      WFE_AI_MODEL    = var.ai_config.model
      WFE_AI_PROJECT  = var.project_id
      WFE_AI_LOCATION = coalesce(var.ai_config.location, var.region)
    }
    # The invoker accounts and token audiences trigger-handler checks (shared/api/identity.py).
    trigger-handler = {
      WFE_TRIGGER_HANDLER_URL       = local.urls["trigger-handler"]
      WFE_SCHEDULER_SERVICE_ACCOUNT = google_service_account.sa["scheduler"].email
      WFE_SCHEDULER_AUDIENCE        = local.urls["trigger-handler"]
      WFE_PUBSUB_SERVICE_ACCOUNT    = google_service_account.sa["pubsub-push"].email
      WFE_PUBSUB_AUDIENCE           = local.urls["trigger-handler"]
    }
    status-stream = {
      WFE_GRAPHQL_INTROSPECTION = tostring(var.app_config.graphql_introspection)
      WFE_ALLOWED_ORIGINS       = join(",", var.app_config.stream_allowed_origins)
      WFE_ID_TOKEN_AUDIENCE     = join(",", var.app_config.id_token_audiences)
      WFE_ID_TOKEN_PRINCIPALS   = join(",", var.app_config.id_token_principals)
    }
  }

  # Environment variables read from Secret Manager (name => key of local.secrets).
  secret_env = {
    create = {
      WFE_API_KEYS            = "api-keys"
      WFE_API_KEY_SALT        = "api-key-salt"
      WFE_TRIGGER_BINDING_KEY = "trigger-binding-key"
    }
    execute-step = {}
    trigger-handler = merge(
      { WFE_TRIGGER_BINDING_KEY = "trigger-binding-key" },
      {
        for name in var.secrets_config.webhook_secrets :
        "WFE_SECRET_WEBHOOK_${upper(replace(name, "-", "_"))}" => "webhook-${name}"
      },
    )
    status-stream = {
      WFE_API_KEYS     = "api-keys"
      WFE_API_KEY_SALT = "api-key-salt"
    }
  }

  env = {
    for name in keys(local.functions) :
    name => merge(try(var.services_config[name].env, {}), local.common_env, local.service_env[name])
  }
}

resource "google_cloud_run_v2_service" "function" {
  for_each = local.functions

  project             = var.project_id
  location            = var.region
  name                = local.service_names[each.key]
  description         = each.value.description
  ingress             = each.value.ingress
  deletion_protection = var.deletion_protection
  labels              = merge(var.labels, { function = each.key })

  template {
    service_account                  = google_service_account.sa[each.key].email
    timeout                          = "${local.service_settings[each.key].timeout_seconds}s"
    max_instance_request_concurrency = local.service_settings[each.key].concurrency
    session_affinity                 = each.value.session_affinity
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    labels                           = merge(var.labels, { function = each.key })

    scaling {
      min_instance_count = local.service_settings[each.key].min_instances
      max_instance_count = local.service_settings[each.key].max_instances
    }

    containers {
      name  = each.key
      image = var.image
      args  = [each.key]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = local.service_settings[each.key].cpu
          memory = local.service_settings[each.key].memory
        }
        cpu_idle          = local.service_settings[each.key].cpu_idle
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secret_env[each.key]
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secret[env.value].secret_id
              version = "latest"
            }
          }
        }
      }

      # Probes reach the container directly, so /healthz works here even though
      # Cloud Run's front end reserves paths ending in "z" for outside callers.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 30
        http_get {
          path = each.value.health_path
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = each.value.health_path
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = each.key != "execute-step" || local.service_settings[each.key].timeout_seconds > var.tasks_config.dispatch_deadline_seconds
      error_message = "execute-step's timeout_seconds must exceed tasks_config.dispatch_deadline_seconds, or Cloud Run ends a step that Cloud Tasks still waits for."
    }
  }

  # A revision reads its secrets when it starts: grant access first.
  depends_on = [google_secret_manager_secret_iam_member.accessor]
}
