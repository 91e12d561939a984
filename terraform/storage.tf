# Encrypted backups of the device-key registry, in two EU regions: losing
# a region must not lose the keys every sensor depends on. The objects are
# already KMS-wrapped; CMEK on the bucket is a second lock.
resource "google_storage_bucket" "backup" {
  for_each = toset(var.backup_locations)

  name                        = "${var.project_id}-keys-${each.key}"
  location                    = each.key
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage[each.key].id
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 30
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_agent]
}
