# Secret Manager secrets the services read as environment variables. Terraform creates
# the secrets and their access grants, never their values: add a version of each with
# gcloud before the services' first apply (docs/deploy.md).

locals {
  api_secrets = {
    api-keys     = "API keys of end users: comma-separated sha256(salt:key):subject:tenant:role entries (WFE_API_KEYS)"
    api-key-salt = "Salt of the API key hashes (WFE_API_KEY_SALT)"
    # Signs the tenant of the Scheduler job URLs create makes; trigger-handler checks it.
    trigger-binding-key = "HMAC key binding trigger URLs to their tenant (WFE_TRIGGER_BINDING_KEY on create and trigger-handler)"
  }
  webhook_secrets = {
    for name in var.secrets_config.webhook_secrets :
    "webhook-${name}" => "HMAC secret of the ${name} webhook (WFE_SECRET_WEBHOOK_${upper(replace(name, "-", "_"))} on trigger-handler)"
  }
  secrets = merge(local.api_secrets, local.webhook_secrets)
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  project             = var.project_id
  secret_id           = "${var.name_prefix}-${each.key}"
  labels              = var.labels
  annotations         = { description = each.value }
  deletion_protection = var.deletion_protection

  replication {
    auto {}
  }
}
