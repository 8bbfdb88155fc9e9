# prod: the same image digest as staging, promoted (docs/deploy.md).
project_id = "my-wfe-prod"
region     = "us-central1"

firestore_config = {
  point_in_time_recovery = true
  delete_protection      = true
  backup_retention       = "1209600s" # 14 days of daily backups
}

ai_config = {
  provider = "vertex"
}

app_config = {
  graphql_introspection = false
}

alerts_config = {
  # projects/my-wfe-prod/notificationChannels/ID of the on-call channel
  notification_channels = []
}

tasks_config = {
  max_attempts              = 50
  max_dispatches_per_second = 500
  max_concurrent_dispatches = 1000
}

services_config = {
  create       = { min_instances = 1 }
  execute-step = { min_instances = 1, max_instances = 100 }
}
