# The lasting buckets: the function source archives, the software release
# images, and the encrypted backups of the key registry in two EU regions,
# so that losing a region loses no key every sensor depends on (each
# backup object is sealed client-side under a key only KMS unwraps; CMEK
# on the bucket is a second lock). A release image needs no secrecy (its
# signed manifest in Firestore is what devices trust), but it stays in the
# EU and under CMEK like everything else at rest.
#
# The backup buckets carry a retention policy instead of object
# versioning: Cloud Storage does not allow both on one bucket, and a
# retention policy is the stronger of the two (no backup can be deleted or
# replaced before its retention ends, by anyone once locked). Each run
# writes a new object, so there is never an older version to keep.
locals {
  backup_retention_seconds = var.backup_retention_days * 86400
  buckets = merge(
    { source = { name = "${var.project_id}-fn-source", location = var.region, backup = false } },
    { releases = { name = "${var.project_id}-releases", location = var.region, backup = false } },
    { for l in var.backup_locations : "keys-${l}" => { name = "${var.project_id}-keys-${l}", location = l, backup = true } },
  )
  backup_buckets = [for l in var.backup_locations : google_storage_bucket.bucket["keys-${l}"].name]
}

resource "google_storage_bucket" "bucket" {
  for_each = local.buckets

  name                        = each.value.name
  location                    = each.value.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Old archive versions serve a quick rollback of a function; a release
  # image deleted by mistake can be brought back.
  versioning {
    enabled = !each.value.backup
  }

  dynamic "retention_policy" {
    for_each = each.value.backup ? [1] : []
    content {
      retention_period = local.backup_retention_seconds
      is_locked        = var.backup_retention_locked
    }
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage[each.value.location].id
  }

  # Archives: keep the last ten versions. Backups: delete them after
  # backup_keep_days, never before their retention ends.
  lifecycle_rule {
    condition {
      num_newer_versions = each.value.backup ? null : 10
      with_state         = each.value.backup ? "ANY" : "ARCHIVED"
      age                = each.value.backup ? max(var.backup_keep_days, var.backup_retention_days) : null
    }
    action {
      type = "Delete"
    }
  }

  # A destroyed backup bucket is the one copy of the keys that survives a
  # lost database; a destroyed source bucket breaks every redeploy; a
  # destroyed releases bucket strands every update in progress.
  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_agent, google_project_service.api]
}

# Customers' project exports (NDJSON objects and a manifest per export),
# written by data-rights and downloaded through V4 URLs the API signs,
# which live an hour. An export is a copy meant to be fetched within days,
# so it is kept for export_keep_days only. In the functions' EU region
# beside the other data buckets, under a key of its own: nobody but the
# Cloud Storage agent uses it, and it can be disabled without touching
# any other store. Unlike the buckets above nothing here is the only
# copy of anything: it has no versioning and no prevent_destroy, and a
# destroy empties it rather than leave customers' data behind.
locals {
  export_keep_days = 7
}

resource "google_storage_bucket" "exports" {
  name                        = "${var.project_id}-exports"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  # An erased project's exports must be gone when data-rights deletes
  # them, not kept restorable for another week by soft delete.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  versioning {
    enabled = false
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.regional["exports"].id
  }

  lifecycle_rule {
    condition {
      age = local.export_keep_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.exports_storage_agent, google_project_service.api]
}
