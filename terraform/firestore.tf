resource "google_firestore_database" "main" {
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # Destroying the stack must never destroy the data.
  deletion_policy = "ABANDON"

  cmek_config {
    kms_key_name = google_kms_crypto_key.symmetric["firestore"].id
  }

  depends_on = [google_kms_crypto_key_iam_member.firestore_agent, google_project_service.api]
}

# Events, sessions and reception records carry their own expiry, so that
# retention is enforced by Firestore rather than by a job that can stop.
resource "google_firestore_field" "ttl" {
  for_each = toset(["events", "sessions", "receptions"])

  database   = google_firestore_database.main.name
  collection = each.key
  field      = "expireAt"

  ttl_config {}
  # The expiry is never queried: no single-field index for it.
  index_config {}
}

# Sweep: online connectors whose last heartbeat is older than the cutoff.
resource "google_firestore_index" "connectors_online_last_seen" {
  database    = google_firestore_database.main.name
  collection  = "connectors"
  query_scope = "COLLECTION"

  fields {
    field_path = "online"
    order      = "ASCENDING"
  }

  fields {
    field_path = "lastSeen"
    order      = "ASCENDING"
  }
}
