# Tenants declared by the environment (var.tenants), written as Firestore documents
# tenants/{id}: the fields the code's tenant registry reads
# (shared/adapters/firestore_tenants.py: displayName, disabled, quotas as a map in
# camelCase; the id is the document's). tests/infra/test_tenants.py evaluates
# local.tenant_documents with `terraform console` and parses each one as the Tenant model.

locals {
  # Quota attribute => document field, by Firestore value type.
  tenant_integer_quotas = {
    max_running_executions = "maxRunningExecutions"
    max_queued_executions  = "maxQueuedExecutions"
    max_workflows          = "maxWorkflows"
    max_definition_bytes   = "maxDefinitionBytes"
    max_storage_bytes      = "maxStorageBytes"
    retention_days         = "retentionDays"
  }
  tenant_double_quotas = {
    steps_per_second = "stepsPerSecond"
    steps_burst      = "stepsBurst"
  }

  tenant_documents = {
    for id, tenant in var.tenants : id => jsonencode({
      displayName = { stringValue = tenant.display_name }
      disabled    = { booleanValue = tenant.disabled }
      quotas = {
        mapValue = {
          fields = merge(
            {
              for name, field in local.tenant_integer_quotas :
              field => { integerValue = tostring(floor(tenant.quotas[name])) }
              if tenant.quotas[name] != null
            },
            {
              for name, field in local.tenant_double_quotas :
              field => { doubleValue = tenant.quotas[name] }
              if tenant.quotas[name] != null
            },
          )
        }
      }
    })
  }
}

resource "google_firestore_document" "tenant" {
  for_each = local.tenant_documents

  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = "tenants"
  document_id = each.key
  fields      = each.value
}
