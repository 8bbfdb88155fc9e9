# staging: production settings at a smaller scale. The image is set by the pipeline.
project_id = "my-wfe-staging"
region     = "us-central1"

firestore_config = {
  point_in_time_recovery = true
  delete_protection      = true
}

ai_config = {
  provider = "vertex"
}

alerts_config = {
  notification_channels = []
}

tasks_config = {
  max_attempts = 50
}
