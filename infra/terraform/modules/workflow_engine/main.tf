# The workflow engine on Google Cloud: four Cloud Run services from one image
# (functions.tf), the step queue (tasks.tf), topics and push subscriptions (pubsub.tf),
# the Firestore database (firestore.tf), service accounts and every grant (iam.tf),
# secrets (secrets.tf), log-based metrics and alert policies (monitoring.tf).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Cloud Run's deterministic URLs (https://SERVICE-PROJECT_NUMBER.REGION.run.app) are
  # known before the services exist, so a service can be told its own URL and the
  # others' without a dependency cycle (execute-step enqueues tasks to itself).
  service_names = { for name in keys(local.functions) : name => "${var.name_prefix}-${name}" }
  urls = {
    for name, service in local.service_names :
    name => "https://${service}-${data.google_project.this.number}.${var.region}.run.app"
  }
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
