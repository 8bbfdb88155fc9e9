# One service account per function and per caller, and every grant of the module in
# one table (local.grants). tests/infra/test_iam.py keeps the expected table and
# compares it both ways, so a role added here without a use in the code fails a test.

locals {
  service_accounts = {
    create          = "wfe create: management API"
    execute-step    = "wfe execute-step: runs steps"
    trigger-handler = "wfe trigger-handler: starts executions from triggers"
    status-stream   = "wfe status-stream: live execution events"
    tasks           = "wfe: OIDC identity of Cloud Tasks calling execute-step"
    scheduler       = "wfe: OIDC identity of Cloud Scheduler calling trigger-handler"
    pubsub-push     = "wfe: OIDC identity of Pub/Sub pushing to trigger-handler"
    retention       = "wfe: OIDC identity of Cloud Scheduler calling the retention sweep on create"
  }

  # Grant targets: project (conditioned on the engine's Firestore database for the
  # datastore roles), queue, sa:<account>, topic:<name>, topics:publish (each of
  # pubsub_config.publish_topics), subscriptions:triggers, secret:<key>,
  # secrets:webhook (each webhook secret), service:<function>. `when` names the
  # input that switches a grant on (always, vertex, public_api, cloud_trace).
  grants = {
    create = [
      { role = "roles/datastore.user", on = "project", when = "always" },
      { role = "roles/cloudtrace.agent", on = "project", when = "cloud_trace" },
      { role = "custom:scheduler-reconciler", on = "project", when = "always" },
      { role = "roles/cloudtasks.enqueuer", on = "queue", when = "always" },
      { role = "roles/iam.serviceAccountUser", on = "sa:tasks", when = "always" },
      { role = "roles/iam.serviceAccountUser", on = "sa:scheduler", when = "always" },
      { role = "roles/pubsub.publisher", on = "topic:lifecycle", when = "always" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:api-keys", when = "always" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:api-key-salt", when = "always" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:trigger-binding-key", when = "always" },
    ]
    execute-step = [
      { role = "roles/datastore.user", on = "project", when = "always" },
      { role = "roles/cloudtrace.agent", on = "project", when = "cloud_trace" },
      { role = "roles/aiplatform.user", on = "project", when = "vertex" },
      { role = "roles/cloudtasks.enqueuer", on = "queue", when = "always" },
      { role = "roles/iam.serviceAccountUser", on = "sa:tasks", when = "always" },
      { role = "roles/pubsub.publisher", on = "topic:lifecycle", when = "always" },
      { role = "roles/pubsub.publisher", on = "topic:triggers", when = "always" },
      { role = "roles/pubsub.publisher", on = "topics:publish", when = "always" },
    ]
    trigger-handler = [
      { role = "roles/datastore.user", on = "project", when = "always" },
      { role = "roles/cloudtrace.agent", on = "project", when = "cloud_trace" },
      { role = "roles/cloudtasks.enqueuer", on = "queue", when = "always" },
      { role = "roles/iam.serviceAccountUser", on = "sa:tasks", when = "always" },
      { role = "roles/pubsub.publisher", on = "topic:lifecycle", when = "always" },
      { role = "roles/secretmanager.secretAccessor", on = "secrets:webhook", when = "always" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:trigger-binding-key", when = "always" },
    ]
    status-stream = [
      { role = "roles/datastore.viewer", on = "project", when = "always" },
      { role = "roles/cloudtrace.agent", on = "project", when = "cloud_trace" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:api-keys", when = "always" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:api-key-salt", when = "always" },
    ]
    tasks = [
      { role = "roles/run.invoker", on = "service:execute-step", when = "always" },
    ]
    scheduler = [
      { role = "roles/run.invoker", on = "service:trigger-handler", when = "always" },
    ]
    pubsub-push = [
      { role = "roles/run.invoker", on = "service:trigger-handler", when = "always" },
    ]
    # The retention job calls create even when it is not public (app_config.public_api);
    # the code admits it as a platform admin (WFE_ID_TOKEN_PRINCIPALS, functions.tf).
    retention = [
      { role = "roles/run.invoker", on = "service:create", when = "always" },
    ]
    # Pub/Sub's service agent: signs the push OIDC tokens, forwards undeliverable
    # messages to the dead-letter topic and acknowledges them on the source.
    pubsub-agent = [
      { role = "roles/iam.serviceAccountTokenCreator", on = "sa:pubsub-push", when = "always" },
      { role = "roles/pubsub.publisher", on = "topic:dead-letter", when = "always" },
      { role = "roles/pubsub.subscriber", on = "subscriptions:triggers", when = "always" },
    ]
    public = [
      { role = "roles/run.invoker", on = "service:create", when = "public_api" },
      { role = "roles/run.invoker", on = "service:status-stream", when = "public_api" },
    ]
  }

  # Roles narrower than any predefined one (roles/cloudscheduler.admin could also run
  # jobs and manage every job of the project).
  custom_roles = {
    scheduler-reconciler = {
      title       = "wfe scheduler job reconciler"
      description = "Create, read, update, pause, resume and delete Cloud Scheduler jobs (shared/adapters/cloud_scheduler.py)."
      permissions = [
        "cloudscheduler.jobs.create",
        "cloudscheduler.jobs.delete",
        "cloudscheduler.jobs.enable",
        "cloudscheduler.jobs.get",
        "cloudscheduler.jobs.list",
        "cloudscheduler.jobs.pause",
        "cloudscheduler.jobs.update",
      ]
    }
  }

  switches = {
    always      = true
    vertex      = var.ai_config.provider == "vertex"
    public_api  = var.app_config.public_api
    cloud_trace = var.app_config.trace_exporter == "gcp"
  }

  members = merge(
    { for key, account in google_service_account.sa : key => "serviceAccount:${account.email}" },
    {
      pubsub-agent = "serviceAccount:${local.pubsub_service_agent}"
      public       = "allUsers"
    },
  )

  # Targets standing for several resources, expanded.
  grant_targets = {
    "topics:publish"         = [for topic in keys(local.publish_topics) : "publish:${topic}"]
    "subscriptions:triggers" = [for key in keys(local.trigger_topics) : "subscription:${key}"]
    "secrets:webhook"        = [for name in var.secrets_config.webhook_secrets : "secret:webhook-${name}"]
  }

  # The table as a flat list of enabled grants, each with one concrete target.
  grant_list = flatten([
    for principal, rows in local.grants : [
      for row in rows : [
        for target in try(local.grant_targets[row.on], [row.on]) :
        { principal = principal, role = row.role, target = target }
      ] if local.switches[row.when]
    ]
  ])
  grants_by_kind = {
    for kind in ["project", "queue", "sa", "topic", "publish", "subscription", "secret", "service"] :
    kind => {
      for grant in local.grant_list :
      "${grant.principal} ${grant.role} ${grant.target}" => merge(grant, {
        name = replace(grant.target, "/^[^:]*:/", "")
      })
      if split(":", grant.target)[0] == kind
    }
  }

  firestore_condition = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.main.name}\""
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = each.value
}

resource "google_project_iam_custom_role" "role" {
  for_each = local.custom_roles

  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_${replace(each.key, "-", "_")}"
  title       = each.value.title
  description = each.value.description
  permissions = each.value.permissions
}

resource "google_project_iam_member" "grant" {
  for_each = local.grants_by_kind["project"]

  project = var.project_id
  role = (
    startswith(each.value.role, "custom:") ?
    google_project_iam_custom_role.role[trimprefix(each.value.role, "custom:")].name :
    each.value.role
  )
  member = local.members[each.value.principal]

  # Datastore roles reach only the engine's database, not others in the project.
  dynamic "condition" {
    for_each = startswith(each.value.role, "roles/datastore.") ? [1] : []
    content {
      title       = "wfe-firestore-database"
      description = "Only the workflow engine's Firestore database"
      expression  = local.firestore_condition
    }
  }
}

resource "google_cloud_tasks_queue_iam_member" "grant" {
  for_each = local.grants_by_kind["queue"]

  project  = var.project_id
  location = google_cloud_tasks_queue.steps.location
  name     = google_cloud_tasks_queue.steps.name
  role     = each.value.role
  member   = local.members[each.value.principal]
}

# The queue grants above on the further queue shards of tasks.tf (tasks_config.queue_shards).
resource "google_cloud_tasks_queue_iam_member" "shard_grant" {
  for_each = {
    for pair in setproduct(keys(local.grants_by_kind["queue"]), range(var.tasks_config.queue_shards - 1)) :
    "${pair[0]}/${pair[1] + 1}" => merge(local.grants_by_kind["queue"][pair[0]], { shard = pair[1] })
  }

  project  = var.project_id
  location = google_cloud_tasks_queue.shard[each.value.shard].location
  name     = google_cloud_tasks_queue.shard[each.value.shard].name
  role     = each.value.role
  member   = local.members[each.value.principal]
}

resource "google_service_account_iam_member" "grant" {
  for_each = local.grants_by_kind["sa"]

  service_account_id = google_service_account.sa[each.value.name].name
  role               = each.value.role
  member             = local.members[each.value.principal]
}

resource "google_pubsub_topic_iam_member" "grant" {
  for_each = merge(local.grants_by_kind["topic"], local.grants_by_kind["publish"])

  project = var.project_id
  topic = (
    startswith(each.value.target, "publish:") ? local.publish_topics[each.value.name] :
    {
      lifecycle   = google_pubsub_topic.lifecycle.id
      triggers    = google_pubsub_topic.triggers.id
      dead-letter = google_pubsub_topic.dead_letter.id
    }[each.value.name]
  )
  role   = each.value.role
  member = local.members[each.value.principal]
}

resource "google_pubsub_subscription_iam_member" "grant" {
  for_each = local.grants_by_kind["subscription"]

  project      = var.project_id
  subscription = google_pubsub_subscription.trigger[each.value.name].name
  role         = each.value.role
  member       = local.members[each.value.principal]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.grants_by_kind["secret"]

  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.name].secret_id
  role      = each.value.role
  member    = local.members[each.value.principal]
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.grants_by_kind["service"]

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.function[each.value.name].name
  role     = each.value.role
  member   = local.members[each.value.principal]
}
