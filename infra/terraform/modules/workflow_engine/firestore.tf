# The Firestore (native mode) database, its composite indexes and single-field index
# exemptions read from infra/firestore/indexes.json (the file the store's index test
# checks against every query), and optional TTL policies.

locals {
  firestore_indexes = jsondecode(file("${path.module}/../../../firestore/indexes.json"))

  firestore_composites = {
    for index in local.firestore_indexes.indexes :
    "${index.collectionGroup}:${index.queryScope}:${join(",", [for field in index.fields : field.fieldPath])}" => index
  }

  # Field overrides of indexes.json, plus a TTL policy for each firestore_config.ttl_fields
  # entry (its single-field indexes off too: an expiry time is a monotonically
  # increasing value, a hot spot when indexed).
  firestore_fields = merge(
    {
      for field in local.firestore_indexes.fieldOverrides :
      "${field.collectionGroup}.${field.fieldPath}" => {
        collection = field.collectionGroup
        field      = field.fieldPath
        ttl        = try(field.ttl, false)
        indexes = [
          for index in try(field.indexes, []) : {
            order        = try(index.order, null)
            array_config = try(index.arrayConfig, null)
            query_scope  = try(index.queryScope, null)
          }
        ]
      }
    },
    {
      for collection, field in var.firestore_config.ttl_fields :
      "${collection}.${field}" => { collection = collection, field = field, ttl = true, indexes = [] }
    },
  )
}

resource "google_firestore_database" "main" {
  project                           = var.project_id
  name                              = var.firestore_config.database_id
  location_id                       = coalesce(var.firestore_config.location_id, var.region)
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "PESSIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = var.firestore_config.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.firestore_config.delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.firestore_config.delete_protection ? "ABANDON" : "DELETE"
}

resource "google_firestore_index" "composite" {
  for_each = local.firestore_composites

  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = each.value.collectionGroup
  query_scope = each.value.queryScope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }
}

resource "google_firestore_field" "override" {
  for_each = local.firestore_fields

  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value.collection
  field      = each.value.field

  # An empty index_config turns every single-field index of the field off.
  index_config {
    dynamic "indexes" {
      for_each = each.value.indexes
      content {
        order        = indexes.value.order
        array_config = indexes.value.array_config
        query_scope  = indexes.value.query_scope
      }
    }
  }

  dynamic "ttl_config" {
    for_each = each.value.ttl ? [1] : []
    content {}
  }
}

resource "google_firestore_backup_schedule" "daily" {
  count = var.firestore_config.backup_retention == null ? 0 : 1

  project   = var.project_id
  database  = google_firestore_database.main.name
  retention = var.firestore_config.backup_retention

  daily_recurrence {}
}
