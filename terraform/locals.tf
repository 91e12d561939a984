locals {
  # EU member states' regions. Europe is wider than the EU: London
  # (europe-west2) and Zurich (europe-west6) are deliberately absent.
  eu_regions = [
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west3",
    "europe-west4",
    "europe-west8",
    "europe-west9",
    "europe-west10",
    "europe-west12",
  ]

  # One entry per function in shared/deploy; the tests check they agree.
  functions = {
    ingest = { entry_point = "Ingest", trigger = "pubsub", description = "Opens sealed uplinks, stores events once, replies through one connector." }
    sweep  = { entry_point = "Sweep", trigger = "http", description = "Marks connectors that stopped sending heartbeats OFFLINE." }
  }

  topics = toset(["uplinks", "connector-status", "events", "downlinks", "dead-letter"])

  # Pub/Sub-driven functions get our own push subscriptions, not Eventarc
  # triggers: only a subscription can carry a dead-letter policy.
  push_subscriptions = {
    ingest-uplinks = { topic = "uplinks", function = "ingest" }
    ingest-status  = { topic = "connector-status", function = "ingest" }
  }

  # Both functions run the ingest package, which reads all of these.
  function_env = {
    GOOGLE_CLOUD_PROJECT                = var.project_id
    SEALEDSENSE_DEVICE_KEY              = google_kms_crypto_key.symmetric["device_keys"].id
    SEALEDSENSE_SESSION_KEK_KEY         = google_kms_crypto_key.symmetric["session_kek"].id
    SEALEDSENSE_TOPIC_EVENTS            = "events"
    SEALEDSENSE_TOPIC_DOWNLINKS         = "downlinks"
    SEALEDSENSE_TOPIC_STATUS            = "connector-status"
    SEALEDSENSE_INGEST_WINDOW           = var.ingest_window
    SEALEDSENSE_NETWORK_STATUS_EVERY    = var.network_status_every
    SEALEDSENSE_CONNECTOR_OFFLINE_AFTER = var.connector_offline_after
    LOG_EXECUTION_ID                    = "true"
  }

  # Storage and Artifact Registry need keys in the same location as the
  # data they protect, so region-bound stores get key rings of their own.
  regional_key_locations = toset(concat([var.region], var.backup_locations))

  api_base_url = "https://${var.region}-${var.project_id}.cloudfunctions.net"
}
