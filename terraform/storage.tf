# Every bucket: the function source archives, and the encrypted backups
# of the device-key registry in two EU regions, so that losing a region
# loses no key every sensor depends on (the backup objects are already
# KMS-wrapped; CMEK on the bucket is a second lock). Old archive versions
# serve only a quick rollback; backups keep a longer history.
locals {
  buckets = merge(
    { source = { name = "${var.project_id}-fn-source", location = var.region, keep_versions = 10 } },
    { for l in var.backup_locations : "keys-${l}" => { name = "${var.project_id}-keys-${l}", location = l, keep_versions = 30 } },
  )
}

resource "google_storage_bucket" "bucket" {
  for_each = local.buckets

  name                        = each.value.name
  location                    = each.value.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage[each.value.location].id
  }

  lifecycle_rule {
    condition {
      num_newer_versions = each.value.keep_versions
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_agent]
}
