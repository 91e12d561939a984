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
  # public: reachable from the internet (ALLOW_ALL ingress) by anyone, who
  # then authenticates to the function itself (API tokens, or Studio's
  # OpenID Connect sign-in);
  # operators: reachable from the internet by var.operators only (IAM); the
  # rest take only Pub/Sub push and Cloud Scheduler calls from this
  # project.
  functions = {
    ingest          = { entry_point = "Ingest", trigger = "pubsub", description = "Opens sealed uplinks, stores events once, replies through one connector.", timeout = 60, public = false, concurrency = 16, operators = false }
    sweep           = { entry_point = "Sweep", trigger = "http", description = "Marks connectors that stopped sending heartbeats OFFLINE.", timeout = 60, public = false, concurrency = 16, operators = false }
    api             = { entry_point = "API", trigger = "http", description = "The customer API: DT v2 REST resources, token endpoint, JWKS and audit log.", timeout = 60, public = true, concurrency = 16, operators = false }
    stream          = { entry_point = "Stream", trigger = "http", description = "devices:stream: live events as NDJSON or SSE, with resume.", timeout = 3600, public = true, concurrency = 1000, operators = false }
    deliver         = { entry_point = "Deliver", trigger = "pubsub", description = "Queues each event for the project's Data Connectors and makes the first signed attempts.", timeout = 60, public = false, concurrency = 16, operators = false }
    "deliver-sweep" = { entry_point = "DeliverSweep", trigger = "http", description = "Retries due webhook deliveries and works through backfills and syncs.", timeout = 60, public = false, concurrency = 16, operators = false }
    backup          = { entry_point = "Backup", trigger = "http", description = "Writes the encrypted key-registry backup to both backup buckets once a day and checks every hour that both are fresh.", timeout = 540, public = false, concurrency = 1, operators = false }
    "data-rights"   = { entry_point = "DataRights", trigger = "http", description = "Works through customers' data-rights jobs: project exports to the exports bucket, erasures and retention rewrites.", timeout = 540, public = false, concurrency = 1, operators = false }
    operator        = { entry_point = "Operator", trigger = "http", description = "The operators' internal routes: start, read, pause, resume, advance and abort software rollouts.", timeout = 60, public = false, concurrency = 16, operators = true }
    studio          = { entry_point = "Studio", trigger = "http", description = "Studio, the web console: people sign in with OpenID Connect and manage their projects; it runs the API in-process on their behalf.", timeout = 3600, public = true, concurrency = 200, operators = false }
  }

  topics = toset(["uplinks", "connector-status", "events", "downlinks", "dead-letter"])

  # Pub/Sub-driven functions get our own push subscriptions, not Eventarc
  # triggers: only a subscription we own can carry a dead-letter policy.
  push_subscriptions = {
    ingest-uplinks = { topic = "uplinks", function = "ingest" }
    ingest-status  = { topic = "connector-status", function = "ingest" }
    deliver-events = { topic = "events", function = "deliver" }
  }

  # Every function gets the one map, which keeps the functions from
  # drifting apart; the policy test checks each variable a function reads
  # is here.
  function_env = {
    GOOGLE_CLOUD_PROJECT                      = var.project_id
    SEALEDSENSE_DEVICE_KEY                    = google_kms_crypto_key.symmetric["device_keys"].id
    SEALEDSENSE_SESSION_KEK_KEY               = google_kms_crypto_key.symmetric["session_kek"].id
    SEALEDSENSE_TOPIC_EVENTS                  = "events"
    SEALEDSENSE_TOPIC_DOWNLINKS               = "downlinks"
    SEALEDSENSE_TOPIC_STATUS                  = "connector-status"
    SEALEDSENSE_INGEST_WINDOW                 = var.ingest_window
    SEALEDSENSE_INGEST_HANDSHAKE_RATE         = var.ingest_handshake_rate
    SEALEDSENSE_INGEST_UNKNOWN_RATE           = var.ingest_unknown_rate
    SEALEDSENSE_INGEST_KEY_REFRESH_EVERY      = var.ingest_key_refresh_every
    SEALEDSENSE_NETWORK_STATUS_EVERY          = var.network_status_every
    SEALEDSENSE_CONNECTOR_OFFLINE_AFTER       = var.connector_offline_after
    SEALEDSENSE_CONFIG_EXPIRE_AFTER           = var.config_expire_after
    SEALEDSENSE_CONNECTOR_OFFLINE_ALERT_AFTER = var.connector_offline_alert_after
    SEALEDSENSE_ANOMALY_SILENT_FACTOR         = "${var.anomaly_silent_factor}"
    SEALEDSENSE_ANOMALY_SILENT_FLOOR          = var.anomaly_silent_floor
    SEALEDSENSE_STREAM_SETTLE_AFTER           = var.stream_settle_after
    SEALEDSENSE_EVENT_RETENTION               = "${var.event_retention_days * 24}h"
    SEALEDSENSE_API_SECRETS_KEY               = google_kms_crypto_key.symmetric["api_secrets"].id
    SEALEDSENSE_SIGNING_KEY                   = google_kms_crypto_key.signing.id
    SEALEDSENSE_API_BASE_URL                  = local.api_base_url
    SEALEDSENSE_API_ACCESS_TTL                = var.api_access_ttl
    SEALEDSENSE_API_RATE                      = "${var.api_rate}"
    SEALEDSENSE_EMULATOR_RATE                 = "${var.emulator_rate}"
    SEALEDSENSE_SERVICE_ACCOUNT_DOMAIN        = var.service_account_domain
    SEALEDSENSE_SIGNING_KEY_VERSIONS          = join(",", var.signing_key_versions)
    SEALEDSENSE_WEBHOOK_SECRETS_KEY           = google_kms_crypto_key.symmetric["webhook_secrets"].id
    SEALEDSENSE_WEBHOOK_SIGNING_KEY           = google_kms_crypto_key.webhook_signing.id
    SEALEDSENSE_WEBHOOK_SIGNING_KEY_VERSIONS  = join(",", var.webhook_signing_key_versions)
    SEALEDSENSE_DELIVER_TIMEOUT               = "10s"
    SEALEDSENSE_DELIVER_MAX_AGE               = "12h"
    SEALEDSENSE_DELIVER_BACKOFF_BASE          = "30s"
    SEALEDSENSE_DELIVER_BACKOFF_MAX           = "30m"
    SEALEDSENSE_DELIVER_DISABLE_AFTER         = var.webhook_disable_after
    SEALEDSENSE_BACKUP_KEY                    = google_kms_crypto_key.symmetric["backup_kek"].id
    SEALEDSENSE_BACKUP_BUCKETS                = join(",", local.backup_buckets)
    SEALEDSENSE_BACKUP_EVERY                  = "24h"
    SEALEDSENSE_BACKUP_STALE_AFTER            = "26h"
    SEALEDSENSE_EXPORT_BUCKET                 = google_storage_bucket.exports.name
    SEALEDSENSE_EXPORT_URL_TTL                = "1h"
    SEALEDSENSE_DATA_JOB_BUDGET               = "45s"
    SEALEDSENSE_STUDIO_URL                    = local.studio_url
    SEALEDSENSE_STUDIO_ISSUER                 = var.studio_issuer
    SEALEDSENSE_STUDIO_CLIENT_ID              = var.studio_client_id
    SEALEDSENSE_STUDIO_IDLE                   = "30m"
    SEALEDSENSE_STUDIO_ABSOLUTE               = "12h"
    SEALEDSENSE_LOCAL_MODE                    = "false"
    LOG_EXECUTION_ID                          = "true"
  }

  # Cloud Storage accepts only a key in the bucket's own location, so each
  # bucket location gets a key ring of its own.
  storage_key_locations = toset(concat([var.region], var.backup_locations))

  # A database in eur3 takes keys from the europe multi-region only; a
  # regional database takes keys from its own region.
  firestore_key_location = var.firestore_location == "eur3" ? "europe" : var.firestore_location

  # The api function that serves these lands with the customer API; the
  # URL scheme of Cloud Run functions is already fixed.
  api_base_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/api"
  jwks_url     = "${local.api_base_url}/.well-known/jwks.json"

  # Studio answers under /studio on its own Cloud Run service. The
  # service's deterministic URL (name-projectnumber.region.run.app) is
  # known before the function exists, so the environment every function
  # gets does not depend on the studio function itself. Studio's client
  # secret is not here: it is mounted from Secret Manager into Studio alone
  # (functions.tf).
  studio_url          = "https://studio-${data.google_project.this.number}.${var.region}.run.app/studio"
  studio_redirect_uri = "${local.studio_url}/callback"
}
