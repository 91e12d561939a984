# One identity per function, per connector and per caller: a leaked or
# misused credential reaches only what its one job needs. Roles are granted
# on the resource (this topic, this key, this service). Project-level grants
# are only where no narrower resource exists: Firestore has no
# per-collection IAM (datastore.user), and builds read Google-created
# source buckets and push images (run.builder).

resource "google_service_account" "fn" {
  for_each = local.functions

  account_id   = "fn-${each.key}"
  display_name = "SealedSense function ${each.key}"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "builder" {
  account_id   = "fn-builder"
  display_name = "Builds the SealedSense functions' images"

  depends_on = [google_project_service.api]
}

# One invoker per push subscription and per scheduler job, each allowed to
# call only its own function: a token minted for one cannot call another.
resource "google_service_account" "push_invoker" {
  for_each = local.push_subscriptions

  account_id   = "push-${each.key}"
  display_name = "Pub/Sub push of ${each.key} into ${each.value.function}"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "scheduler" {
  for_each = local.scheduled

  account_id   = "sched-${each.key}"
  display_name = "Cloud Scheduler job ${each.value.name} calling ${each.key}"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "connector" {
  for_each = var.connectors

  # Service account ids are at most 30 characters.
  account_id   = "conn-${substr(each.key, 0, 25)}"
  display_name = "SealedSense Cloud Connector ${each.key}"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "fn_firestore" {
  for_each = { for k, v in local.functions : k => v if k != "backup" }

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.fn[each.key].member
}

# Ingest publishes events and replies; Sweep publishes connectionStatus
# events.
resource "google_pubsub_topic_iam_member" "ingest_publishes" {
  for_each = toset(["events", "downlinks"])

  topic  = google_pubsub_topic.topic[each.key].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn["ingest"].member
}

# The API publishes the REQUESTED status of a device configuration it
# stores, so webhooks get it like every other event. Studio runs the API's
# code in-process for the people signed in to it, so it holds every grant
# the API holds, each as its own account.
resource "google_pubsub_topic_iam_member" "api_publishes" {
  for_each = toset(["api", "studio"])

  topic  = google_pubsub_topic.topic["events"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn[each.key].member
}

# The grant was the api function's alone; moved keeps it, not replaced.
moved {
  from = google_pubsub_topic_iam_member.api_publishes
  to   = google_pubsub_topic_iam_member.api_publishes["api"]
}

resource "google_pubsub_topic_iam_member" "sweep_publishes" {
  topic  = google_pubsub_topic.topic["events"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn["sweep"].member
}

resource "google_cloud_run_v2_service_iam_member" "push_invokes" {
  for_each = local.push_subscriptions

  location = var.region
  name     = google_cloudfunctions2_function.fn[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push_invoker[each.key].member
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes" {
  for_each = local.scheduled

  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler[each.key].member
}

# The operators' routes (rollouts) admit the operators alone: Cloud Run
# checks their Google identity token before a request reaches the code.
resource "google_cloud_run_v2_service_iam_member" "operators_invoke" {
  for_each = var.operators

  location = var.region
  name     = google_cloudfunctions2_function.fn["operator"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

# The API is public: customers authenticate to it with their own service
# account tokens, which it checks itself; so is Studio, whose people sign
# in to it with OpenID Connect. An organization policy that restricts
# allUsers (domain-restricted sharing) must exempt these services.
resource "google_cloud_run_v2_service_iam_member" "public_api" {
  for_each = { for k, f in local.functions : k => f if f.public }

  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub mints each subscription's push OIDC tokens as its invoker.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  for_each = local.push_subscriptions

  service_account_id = google_service_account.push_invoker[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.agents.pubsub
}

# A connector may publish uplinks and its status, and read its own
# downlinks: nothing else, not even another connector's downlinks.
resource "google_pubsub_topic_iam_member" "connector_uplinks" {
  for_each = var.connectors

  topic  = google_pubsub_topic.topic["uplinks"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.connector[each.key].member
}

resource "google_pubsub_topic_iam_member" "connector_status" {
  for_each = var.connectors

  topic  = google_pubsub_topic.topic["connector-status"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.connector[each.key].member
}

resource "google_pubsub_subscription_iam_member" "connector_downlinks" {
  for_each = var.connectors

  subscription = google_pubsub_subscription.downlinks[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.connector[each.key].member
}

# pubsub.subscriber carries no subscriptions.get: viewer lets a connector's
# credentials read its own subscription's settings (filter, deadlines) when
# diagnosing why no downlinks arrive, and still nobody else's.
resource "google_pubsub_subscription_iam_member" "connector_downlinks_viewer" {
  for_each = var.connectors

  subscription = google_pubsub_subscription.downlinks[each.key].id
  role         = "roles/pubsub.viewer"
  member       = google_service_account.connector[each.key].member
}

# Cloud Build no longer gets broad default rights in new projects (and
# organizations may forbid default service accounts), so builds run as
# their own account with the one role Google documents for function builds.
resource "google_project_iam_member" "builder" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = google_service_account.builder.member
}

# The backup function reads the registry, seals each backup under a data
# key that only backup_kek's encrypt wraps (it can never unwrap one, nor
# any device secret), and may add objects to the backup buckets and list
# them to check their age, but not delete or replace one (and retention
# forbids that anyway). Restore runs with an operator's credentials.
resource "google_project_iam_member" "backup_reads_firestore" {
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = google_service_account.fn["backup"].member
}

resource "google_kms_crypto_key_iam_member" "backup_encrypts" {
  crypto_key_id = google_kms_crypto_key.symmetric["backup_kek"].id
  role          = "roles/cloudkms.cryptoKeyEncrypter"
  member        = google_service_account.fn["backup"].member
}

resource "google_storage_bucket_iam_member" "backup_writes" {
  for_each = toset(var.backup_locations)

  bucket = google_storage_bucket.bucket["keys-${each.key}"].name
  role   = "roles/storage.objectCreator"
  member = google_service_account.fn["backup"].member
}

resource "google_storage_bucket_iam_member" "backup_lists" {
  for_each = toset(var.backup_locations)

  bucket = google_storage_bucket.bucket["keys-${each.key}"].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.fn["backup"].member
}

# Data-rights writes each export's objects and manifest, and deletes a
# project's exports when the project is erased: it creates, reads, lists
# and deletes objects in the exports bucket and no other. Its Firestore
# access (the jobs, and the documents of an erased project) is
# fn_firestore's datastore.user, as for the sweeps.
resource "google_storage_bucket_iam_member" "data_rights_exports" {
  bucket = google_storage_bucket.exports.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.fn["data-rights"].member
}

# The API answers an export's download as a V4 signed URL (valid an hour
# at most). A signed URL carries its signer's rights, so the API reads the
# exports bucket, and only it; in GCP the storage client signs through the
# IAM Credentials signBlob call as the API's own account, which needs
# token creation on that account alone, not project-wide, so the API can
# sign as no other identity. The stream runs the API's package but
# answers devices:stream only, so it signs nothing and gets neither.
# Studio answers the same downloads through the API it runs in-process:
# it reads the bucket too, and signs as itself, never as the API.
resource "google_storage_bucket_iam_member" "api_reads_exports" {
  for_each = toset(["api", "studio"])

  bucket = google_storage_bucket.exports.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.fn[each.key].member
}

moved {
  from = google_storage_bucket_iam_member.api_reads_exports
  to   = google_storage_bucket_iam_member.api_reads_exports["api"]
}

resource "google_service_account_iam_member" "api_signs_as_itself" {
  for_each = toset(["api", "studio"])

  service_account_id = google_service_account.fn[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.fn[each.key].member
}

moved {
  from = google_service_account_iam_member.api_signs_as_itself
  to   = google_service_account_iam_member.api_signs_as_itself["api"]
}

# The operators add release images (`provision release`); an image is
# never replaced, so they need no delete or overwrite.
resource "google_storage_bucket_iam_member" "operators_upload_releases" {
  for_each = var.operators

  bucket = google_storage_bucket.bucket["releases"].name
  role   = "roles/storage.objectCreator"
  member = each.value
}
