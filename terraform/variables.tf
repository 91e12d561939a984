variable "project_id" {
  description = "The GCP project to deploy into. It should be empty: Terraform owns everything in it."
  type        = string
}

# Validations repeat the EU list rather than use local.eu_regions: before
# Terraform 1.9 a validation may refer only to its own variable.
variable "region" {
  description = "Where the functions, the scheduler and the regional keys and buckets live. EU regions only."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = contains(["europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west3", "europe-west4", "europe-west8", "europe-west9", "europe-west10", "europe-west12"], var.region)
    error_message = "The region must be in the EU (one of europe-central2, europe-north1, europe-north2, europe-southwest1, europe-west1, europe-west3, europe-west4, europe-west8, europe-west9, europe-west10, europe-west12): SealedSense keeps and processes all data in the EU. London (europe-west2) and Zurich (europe-west6) are not in the EU."
  }
}

variable "firestore_location" {
  description = "The Firestore database's location: the eur3 multi-region (Belgium and the Netherlands) by default."
  type        = string
  default     = "eur3"

  validation {
    condition     = var.firestore_location == "eur3" || contains(["europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west3", "europe-west4", "europe-west8", "europe-west9", "europe-west10", "europe-west12"], var.firestore_location)
    error_message = "The Firestore location must be eur3 or an EU region."
  }
}

variable "kms_location" {
  description = "The location of the main key ring (device keys, session KEK, Pub/Sub CMEK, signing key). A database in eur3 can only use keys in the europe multi-region."
  type        = string
  default     = "europe"

  validation {
    condition     = contains(["europe"], var.kms_location)
    error_message = "The KMS location must be europe: Firestore in eur3 accepts CMEK keys only from the europe multi-region, and keys must not leave the EU."
  }
}

variable "backup_locations" {
  description = "The two EU regions that hold the encrypted backups of the device-key registry; two, so that losing one region loses no keys."
  type        = list(string)
  default     = ["europe-west1", "europe-west4"]

  validation {
    condition     = length(var.backup_locations) == 2 && length(distinct(var.backup_locations)) == 2 && alltrue([for l in var.backup_locations : contains(["europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west3", "europe-west4", "europe-west8", "europe-west9", "europe-west10", "europe-west12"], l)])
    error_message = "The backup locations must be two different EU regions."
  }
}

variable "key_protection_level" {
  description = "Where the keys that guard device secrets, sessions, backups and tokens live: HSM (Cloud HSM, FIPS 140-2 level 3, the default and what the product promises) or SOFTWARE (for a trial project only). Changing it on an applied project replaces those keys, which prevent_destroy refuses: choose before the first apply."
  type        = string
  default     = "HSM"

  validation {
    condition     = contains(["HSM", "SOFTWARE"], var.key_protection_level)
    error_message = "The key protection level must be HSM or SOFTWARE."
  }
}

variable "backup_retention_days" {
  description = "How long each key backup object cannot be deleted or replaced, by anyone (the buckets' retention policy)."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650
    error_message = "The backup retention must be 1 to 3650 days."
  }
}

variable "backup_retention_locked" {
  description = "Lock the backup buckets' retention policy, so that nobody, not even a project owner, can shorten or remove it. Locking cannot be undone: keep it true in production, set false only in a trial project you will delete."
  type        = bool
  default     = true
}

variable "backup_keep_days" {
  description = "Key backups older than this are deleted by the buckets' lifecycle rule; at least the retention period."
  type        = number
  default     = 365

  validation {
    condition     = var.backup_keep_days >= 1 && var.backup_keep_days <= 3650
    error_message = "Backups must be kept 1 to 3650 days."
  }
}

variable "alert_email" {
  description = "Where alerts go."
  type        = string
}

variable "connectors" {
  description = "The ids of the Cloud Connectors to provision: each gets its own service account and downlink subscription."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.connectors : can(regex("^[a-z][a-z0-9-]{0,23}[a-z0-9]$", c))])
    error_message = "Connector ids are 2 to 25 lowercase letters, digits and dashes, starting with a letter and not ending with a dash: each becomes part of a service account id (conn-<id>, at most 30 characters)."
  }
}

variable "operators" {
  description = "The IAM members (user:, group: or serviceAccount:) who run the operators' command (go run ./scripts/provision) and so sign software releases: they may sign with release-signing, list its versions and read their public keys, and add images to the releases bucket; and call the Operator function, which starts and moves software rollouts. Empty: nobody can release software or roll it out."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.operators : can(regex("^(user|group|serviceAccount):[^@[:space:]]+@[^@[:space:]]+$", m))])
    error_message = "Each operator is an IAM member such as user:ops@example.eu, group:release@example.eu or serviceAccount:release@PROJECT.iam.gserviceaccount.com."
  }
}

variable "organization_id" {
  description = "The numeric id of the organization the project belongs to, or empty for a project outside an organization (or when Terraform may not set organization policies). Given, Terraform sets the gcp.resourceLocations policy on the project, which needs roles/orgpolicy.policyAdmin at organization level."
  type        = string
  default     = ""

  validation {
    condition     = var.organization_id == "" || can(regex("^[0-9]+$", var.organization_id))
    error_message = "organization_id is the organization's numeric id (gcloud organizations list), or empty."
  }
}

variable "enforce_resource_locations" {
  description = "With organization_id set, set the gcp.resourceLocations organization policy on the project. Turn off when the organization already enforces it."
  type        = bool
  default     = true
}

variable "firestore_backup_retention_days" {
  description = "How long Firestore keeps each daily backup of the database (at most 98 days, Firestore's limit). Backups are encrypted with the database's key."
  type        = number
  default     = 14

  validation {
    condition     = var.firestore_backup_retention_days >= 1 && var.firestore_backup_retention_days <= 98
    error_message = "Firestore backups are kept 1 to 98 days."
  }
}

variable "log_retention_days" {
  description = "How long the EU log bucket keeps the functions' and services' logs."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 3650
    error_message = "Logs are kept 1 to 3650 days."
  }
}

variable "ingest_window" {
  description = "How long ingest collects copies of a packet from several connectors before it picks one for the reply."
  type        = string
  default     = "200ms"
}

variable "ingest_handshake_rate" {
  description = "Handshakes per second one connector may relay (ten seconds' worth at once); beyond it ingest refuses them as rate-limited."
  type        = number
  default     = 100
}

variable "ingest_unknown_rate" {
  description = "Lookups per second of unknown sensor keys and receiver indexes one connector's traffic may cause (ten seconds' worth at once); beyond it ingest refuses its uncached packets as rate-limited."
  type        = number
  default     = 20
}

variable "ingest_key_refresh_every" {
  description = "How old an ingest instance's unwrapped cloud keys may grow before it reads them again: a rotated or retired cloud key reaches every instance within it."
  type        = string
  default     = "5m"
}

variable "network_status_every" {
  description = "At most one networkStatus event per device per this period."
  type        = string
  default     = "15m"
}

variable "connector_offline_after" {
  description = "A connector silent for this long is marked OFFLINE (and alerted on)."
  type        = string
  default     = "2m"
}

variable "connector_offline_alert_after" {
  description = "A connector OFFLINE this long raises the `connector offline for long` alert (the sweep logs it once per outage)."
  type        = string
  default     = "30m"
}

variable "anomaly_silent_factor" {
  description = "A sensor silent for more than this many times its reporting interval gets a SILENT deviceAnomaly."
  type        = number
  default     = 3

  validation {
    condition     = var.anomaly_silent_factor >= 1.5
    error_message = "anomaly_silent_factor below 1.5 flags sensors for ordinary jitter and lost packets."
  }
}

variable "anomaly_silent_floor" {
  description = "The shortest silence that gets a SILENT deviceAnomaly, whatever the sensor's interval: a rekeying sensor sends nothing until its handshake is answered, and two lost answers hold its packets back about 25 s."
  type        = string
  default     = "1m"
}

variable "anomaly_alert_per_hour" {
  description = "Fleet-wide anomalies of one kind per hour, sustained for 15 minutes, that raise the `fleet-wide device anomalies` alert."
  type        = number
  default     = 20
}

variable "config_expire_after" {
  description = "A device configuration the sensor has not confirmed this long after it was requested is marked EXPIRED (and no longer sent)."
  type        = string
  default     = "168h"
}

variable "max_instances" {
  description = "The most instances each function may scale to."
  type        = number
  default     = 20
}

variable "event_retention_days" {
  description = "How long stored events are kept before Firestore's TTL deletes them."
  type        = number
  default     = 400

  validation {
    condition     = var.event_retention_days >= 1
    error_message = "Events must be kept at least one day."
  }
}

variable "api_access_ttl" {
  description = "How long an API instance trusts what it read of an account: a deleted or disabled key or account, or a revoked role, stops working within it."
  type        = string
  default     = "30s"
}

variable "api_rate" {
  description = "Requests per second one service account may make to one API instance (bursts of twice that); beyond it the API answers 429 with Retry-After."
  type        = number
  default     = 50
}

variable "emulator_rate" {
  description = "Events per second one project may publish through the device emulator API on one API instance (bursts of twice that); beyond it the API answers 429 with Retry-After."
  type        = number
  default     = 10
}

variable "service_account_domain" {
  description = "Service-account emails are <id>@<project>.serviceaccount.<this>."
  type        = string
  default     = "sealedsense.eu"
}

variable "signing_key_versions" {
  description = "Full names of the signing key's versions the API trusts, the signing one first. Empty: version 1 only. To rotate, list the new version first and keep the old one for an hour, the life of its tokens."
  type        = list(string)
  default     = []
}

variable "webhook_signing_key_versions" {
  description = "Full names of the webhook-signing key's versions: the first certifies new delivery keys, all are trusted when the API publishes them. Empty: version 1 only. To rotate, list the new version first and keep the old one for 25 hours, the life of a delivery key plus its signatures."
  type        = list(string)
  default     = []
}

variable "webhook_disable_after" {
  description = "How long a Data Connector may fail without a single success before the system disables it (DT: 5 days)."
  type        = string
  default     = "120h"

  validation {
    condition     = can(regex("^[0-9]+(h|m)$", var.webhook_disable_after))
    error_message = "webhook_disable_after is a Go duration in hours or minutes, e.g. 120h."
  }
}

variable "stream_settle_after" {
  description = "How long after an event's storedAt devices:stream emits it (Go duration). It must cover the delay between a commit's server timestamp and its visibility, which Firestore keeps to milliseconds; more only adds latency."
  type        = string
  default     = "500ms"

  validation {
    condition     = can(regex("^[0-9]+(ms|s)$", var.stream_settle_after))
    error_message = "stream_settle_after is a Go duration in ms or s, such as 500ms."
  }
}

# Studio's sign-in. Its client secret is no variable: a variable's value
# lands in the state and in plan output. It lives in Secret Manager
# (google_secret_manager_secret.studio_client_secret), where the operator
# adds it once by hand.
variable "studio_issuer" {
  description = "The OpenID Connect issuer people sign in to Studio with (its discovery document is <issuer>/.well-known/openid-configuration)."
  type        = string
  default     = "https://accounts.google.com"

  validation {
    condition     = can(regex("^https://[^/[:space:]]+(/[^[:space:]]*)?$", var.studio_issuer))
    error_message = "studio_issuer is an https URL, such as https://accounts.google.com."
  }
}

variable "studio_client_id" {
  description = "Studio's OAuth client id at studio_issuer, whose redirect URI is the studio_redirect_uri output. Empty: Studio is deployed, but its sign-in says it is not configured. Before setting it, add the client secret: gcloud secrets versions add studio-client-secret --data-file=-"
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[^[:space:]]*$", var.studio_client_id))
    error_message = "studio_client_id must not contain spaces."
  }
}
