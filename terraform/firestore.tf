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

  # CMEK is fixed at creation: the agent must hold the key first.
  depends_on = [google_kms_crypto_key_iam_member.firestore_agent, google_project_service.api]
}

# Events, receptions and sessions carry their own expiry, so retention is
# enforced by Firestore rather than by a job that can silently stop. The
# expiry is never queried, so it gets no single-field index (index_config
# left empty), which saves an index write per document.
resource "google_firestore_field" "events_ttl" {
  database   = google_firestore_database.main.name
  collection = "events"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

resource "google_firestore_field" "receptions_ttl" {
  database   = google_firestore_database.main.name
  collection = "receptions"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

resource "google_firestore_field" "sessions_ttl" {
  database   = google_firestore_database.main.name
  collection = "sessions"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# Sign-ins left unfinished expire (they are deleted when finished).
resource "google_firestore_field" "studio_logins_ttl" {
  database   = google_firestore_database.main.name
  collection = "studioLogins"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# Studio's sessions end at their absolute expiry even if no one signs out.
resource "google_firestore_field" "studio_sessions_ttl" {
  database   = google_firestore_database.main.name
  collection = "studioSessions"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

locals {
  # Blobs that are read with their document and never queried get no
  # single-field index either: each would cost an index write per event, or
  # per packet for a device's sealed session, and per handshake for a
  # session's first state and a reception's reply, and an
  # index entry can hold only 1500 bytes of a value anyway.
  unindexed_blobs = {
    events_json       = { collection = "events", field = "json" }
    sessions_sealed   = { collection = "sessions", field = "sealed" }
    devices_session   = { collection = "devices", field = "session" } # a map: its fields inherit the exemption
    receptions_reply  = { collection = "receptions", field = "reply" }
    receptions_packet = { collection = "receptions", field = "packetHash" }
  }

  # Fields whose values rise with each write (times, a map of them) get no
  # single-field index unless a query filters on them alone: every write
  # would land at the end of one index range, which Firestore limits to
  # about 500 writes a second for the whole collection. The queries that
  # order on them do so after a project or status, on composite indexes.
  # shared/store declares these fields beside their documents, and
  # the policy test checks this list against it.
  unindexed_rising = {
    events_timestamp          = { collection = "events", field = "timestamp" }
    events_stored             = { collection = "events", field = "storedAt" }
    receptions_first_received = { collection = "receptions", field = "firstReceived" }
    receptions_first_seen     = { collection = "receptions", field = "firstSeen" }
    receptions_hearers        = { collection = "receptions", field = "hearers" }
    sessions_created          = { collection = "sessions", field = "created" }
    deliveries_due            = { collection = "deliveries", field = "due" }
    deliveries_queued         = { collection = "deliveries", field = "queued" }
    deliveries_delivered      = { collection = "deliveries", field = "deliveredAt" }
    devices_links             = { collection = "devices", field = "links" }
    devices_pending_reply     = { collection = "devices", field = "pendingReply" }
    devices_network_status    = { collection = "devices", field = "lastNetworkStatus" }
    devices_health            = { collection = "devices", field = "health" }
    studio_sessions_last_seen = { collection = "studioSessions", field = "lastSeen" }
  }
}

# Every field above gets an empty index_config: no single-field index.
resource "google_firestore_field" "unindexed" {
  for_each = merge(local.unindexed_blobs, local.unindexed_rising)

  database   = google_firestore_database.main.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}

# Webhook backfill: a project's events in a time range, oldest first, in
# (timestamp, id) pages.
resource "google_firestore_index" "events_backfill" {
  database    = google_firestore_database.main.name
  collection  = "events"
  query_scope = "COLLECTION"

  fields {
    field_path = "projectId"
    order      = "ASCENDING"
  }

  fields {
    field_path = "timestamp"
    order      = "ASCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }
}

# Webhook sync: the latest event of one type of one device.
resource "google_firestore_index" "events_latest_of_type" {
  database    = google_firestore_database.main.name
  collection  = "events"
  query_scope = "COLLECTION"

  fields {
    field_path = "projectId"
    order      = "ASCENDING"
  }

  fields {
    field_path = "deviceId"
    order      = "ASCENDING"
  }

  fields {
    field_path = "eventType"
    order      = "ASCENDING"
  }

  fields {
    field_path = "timestamp"
    order      = "DESCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "DESCENDING"
  }
}

# The API's event history: one device's events of one project in a time
# window, oldest first, optionally of some event types.
resource "google_firestore_index" "events_history" {
  for_each = {
    all_types = ["projectId", "deviceId"]
    by_type   = ["projectId", "deviceId", "eventType"]
  }

  database    = google_firestore_database.main.name
  collection  = "events"
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }

  fields {
    field_path = "timestamp"
    order      = "ASCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }
}

# Sweep: online connectors whose last heartbeat is older than the cutoff
# (an equality and a range on different fields need a composite index).
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

# Sweep: offline connectors not yet alerted on, last heard before the
# long-outage cutoff.
resource "google_firestore_index" "connectors_long_offline" {
  database    = google_firestore_database.main.name
  collection  = "connectors"
  query_scope = "COLLECTION"

  fields {
    field_path = "online"
    order      = "ASCENDING"
  }

  fields {
    field_path = "offlineAlerted"
    order      = "ASCENDING"
  }

  fields {
    field_path = "lastSeen"
    order      = "ASCENDING"
  }
}

# Sweep: devices whose configuration is still PENDING after
# config_expire_after, to mark EXPIRED (an equality and a range on
# different fields need a composite index).
resource "google_firestore_index" "devices_configuration_pending" {
  database    = google_firestore_database.main.name
  collection  = "devices"
  query_scope = "COLLECTION"

  fields {
    field_path = "configuration.status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "configuration.requested"
    order      = "ASCENDING"
  }
}

# Webhook delivery: the sweep claims due pairs (pending, due <= now, oldest
# first), and :metrics reads a connector's last 3 hours of windows.
resource "google_firestore_index" "deliveries_due" {
  database    = google_firestore_database.main.name
  collection  = "deliveries"
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "due"
    order      = "ASCENDING"
  }
}

resource "google_firestore_index" "delivery_metrics_window" {
  database    = google_firestore_database.main.name
  collection  = "deliveryMetrics"
  query_scope = "COLLECTION"

  fields {
    field_path = "connectorId"
    order      = "ASCENDING"
  }

  fields {
    field_path = "window"
    order      = "ASCENDING"
  }
}

# Delivery records, metrics, and delivery and data-rights jobs expire on
# their own, and their expiry is never queried, so it is not indexed.
resource "google_firestore_field" "delivery_ttl" {
  for_each = toset(["deliveries", "deliveryMetrics", "deliveryJobs", "dataJobs"])

  database   = google_firestore_database.main.name
  collection = each.key
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# The API's JWKS lists the delivery keys whose expireAt is still ahead, so
# this TTL field keeps its index.
resource "google_firestore_field" "delivery_keys_ttl" {
  database   = google_firestore_database.main.name
  collection = "deliveryKeys"
  field      = "expireAt"

  ttl_config {}
}

# devices:stream reads a project's events in (storedAt, id) order, and
# listens to its newest one. storedAt rises with each write, so this index
# takes each of a project's events at its end: Firestore's guidance for
# sequential values, about 500 writes a second, is the per-project limit
# of the README's scale model.
resource "google_firestore_index" "events_stream" {
  for_each = { asc = "ASCENDING", desc = "DESCENDING" }

  database    = google_firestore_database.main.name
  collection  = "events"
  query_scope = "COLLECTION"

  fields {
    field_path = "projectId"
    order      = "ASCENDING"
  }

  fields {
    field_path = "storedAt"
    order      = each.value
  }

  fields {
    field_path = "__name__"
    order      = each.value
  }
}

# provision release: a target's releases, newest version first, to refuse
# a version that is not newer.
resource "google_firestore_index" "releases_by_version" {
  database    = google_firestore_database.main.name
  collection  = "releases"
  query_scope = "COLLECTION"

  fields {
    field_path = "target"
    order      = "ASCENDING"
  }

  fields {
    field_path = "version"
    order      = "DESCENDING"
  }
}

# Data-rights: the function takes running jobs whose lease ran out,
# oldest lease first; the API lists a project's jobs of one kind, newest
# first.
resource "google_firestore_index" "data_jobs_lease" {
  database    = google_firestore_database.main.name
  collection  = "dataJobs"
  query_scope = "COLLECTION"

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }

  fields {
    field_path = "leaseUntil"
    order      = "ASCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }
}

resource "google_firestore_index" "data_jobs_of_project" {
  database    = google_firestore_database.main.name
  collection  = "dataJobs"
  query_scope = "COLLECTION"

  fields {
    field_path = "projectId"
    order      = "ASCENDING"
  }

  fields {
    field_path = "kind"
    order      = "ASCENDING"
  }

  fields {
    field_path = "createTime"
    order      = "DESCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "DESCENDING"
  }
}

# A daily backup beside point-in-time recovery (7 days): it survives a
# mistaken bulk delete noticed late. Backups of a CMEK database are
# encrypted with the database's key.
resource "google_firestore_backup_schedule" "daily" {
  database  = google_firestore_database.main.name
  retention = "${var.firestore_backup_retention_days * 86400}s"

  daily_recurrence {}
}
