# One identity per function, per connector and per caller: a leaked or
# misused credential reaches only what its one job needs. Roles are granted
# on the resource (this topic, this key, this service). Firestore has no
# per-collection IAM, so datastore.user is the one project-level grant.

resource "google_service_account" "fn" {
  for_each = local.functions

  account_id   = "fn-${each.key}"
  display_name = "SealedSense function ${each.key}"
}

resource "google_service_account" "builder" {
  account_id   = "fn-builder"
  display_name = "Builds the SealedSense functions' images"
}

resource "google_service_account" "push_invoker" {
  account_id   = "push-invoker"
  display_name = "Pub/Sub push into the SealedSense functions"
}

resource "google_service_account" "scheduler" {
  account_id   = "scheduler"
  display_name = "Cloud Scheduler calls of the SealedSense functions"
}

resource "google_service_account" "connector" {
  for_each = var.connectors

  account_id   = "conn-${each.key}"
  display_name = "SealedSense Cloud Connector ${each.key}"
}

resource "google_project_iam_member" "fn_firestore" {
  for_each = local.functions

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

resource "google_pubsub_topic_iam_member" "sweep_publishes" {
  topic  = google_pubsub_topic.topic["events"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn["sweep"].member
}

resource "google_cloud_run_v2_service_iam_member" "push_invokes" {
  for_each = toset([for s in local.push_subscriptions : s.function])

  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push_invoker.member
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes" {
  location = var.region
  name     = google_cloudfunctions2_function.fn["sweep"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# Pub/Sub mints the push OIDC tokens as push-invoker, and only it.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push_invoker.name
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

# The builder reads the source archives and writes the images; its logs
# are the build logs operators read when a deploy fails.
resource "google_storage_bucket_iam_member" "builder_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.builder.member
}

resource "google_artifact_registry_repository_iam_member" "builder_writes_images" {
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}
