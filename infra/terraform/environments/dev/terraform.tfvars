# dev: cheap and disposable. The image is set by the pipeline.
project_id          = "my-wfe-dev"
region              = "us-central1"
deletion_protection = false

firestore_config = {
  point_in_time_recovery = false
  delete_protection      = false
}

app_config = {
  graphql_introspection  = true
  stream_allowed_origins = ["http://localhost:3000"]
}

alerts_config = {
  enabled = false
}

tasks_config = {
  max_attempts              = 20
  max_dispatches_per_second = 50
  max_concurrent_dispatches = 100
}

services_config = {
  execute-step = { max_instances = 10 }
}
