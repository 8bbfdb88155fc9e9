# The dev environment: one module block; its values are in terraform.tfvars, the
# image digest comes from the pipeline (-var image=...).

module "workflow_engine" {
  source = "../../modules/workflow_engine"

  ai_config           = var.ai_config
  alerts_config       = var.alerts_config
  app_config          = var.app_config
  deletion_protection = var.deletion_protection
  firestore_config    = var.firestore_config
  image               = var.image
  labels              = merge(var.labels, { environment = "dev" })
  name_prefix         = var.name_prefix
  project_id          = var.project_id
  pubsub_config       = var.pubsub_config
  region              = var.region
  retention_config    = var.retention_config
  secrets_config      = var.secrets_config
  services_config     = var.services_config
  tasks_config        = var.tasks_config
  tenants             = var.tenants
}
