# Archives come from `go run ./scripts/package -out terraform/build`
# (shared/deploy): one per function, holding only what it imports. The
# object name carries the archive's hash, so a changed function is
# redeployed and an unchanged one is not.
resource "google_storage_bucket_object" "archive" {
  for_each = local.functions

  name   = "${each.key}-${filesha256("${path.module}/build/${each.key}.zip")}.zip"
  bucket = google_storage_bucket.bucket["source"].name
  source = "${path.module}/build/${each.key}.zip"
}

# The functions' images, under the functions' key: without a repository of
# our own, builds push to a Google-created one with Google's keys.
resource "google_artifact_registry_repository" "functions" {
  location      = var.region
  repository_id = "functions"
  format        = "DOCKER"
  description   = "Images of the SealedSense functions."
  kms_key_name  = google_kms_crypto_key.regional["functions"].id

  # CMEK is fixed at creation: the agent must hold the key first.
  depends_on = [google_kms_crypto_key_iam_member.functions_agents, google_project_service.api]
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.functions

  name         = each.key
  location     = var.region
  description  = each.value.description
  kms_key_name = google_kms_crypto_key.regional["functions"].id

  build_config {
    runtime           = "go126"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.bucket["source"].name
        object = google_storage_bucket_object.archive[each.key].name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.fn[each.key].email
    environment_variables = local.function_env
    available_memory      = "256M"
    # Concurrent requests need a whole CPU; ingest's collection window
    # works best when the copies of one packet meet in one instance.
    available_cpu = "1"
    # A stream holds its request for up to 55 minutes, under Cloud Run's
    # 60-minute limit, and mostly waits: it gets the longest timeout and
    # the most requests per instance. Studio relays the live event stream
    # to the browser, so it gets the same timeout.
    max_instance_request_concurrency = each.value.concurrency
    timeout_seconds                  = each.value.timeout
    min_instance_count               = 0
    max_instance_count               = var.max_instances
    all_traffic_on_latest_revision   = true
    # Pub/Sub push and Cloud Scheduler from this project count as
    # internal traffic, so the functions they call accept nothing from
    # the internet; IAM then admits only each one's own invoker account.
    # Only the customer API, its stream and Studio are public; the
    # operators' routes take requests from anywhere, and IAM admits only
    # operators.
    ingress_settings = each.value.public || each.value.operators ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"

    # Studio's client secret, read from Secret Manager when an instance
    # starts and given to Studio alone. Mounted only once a client id is
    # set: a function that names a secret with no version fails to
    # deploy, and the first apply comes before the operator has added one.
    dynamic "secret_environment_variables" {
      for_each = each.key == "studio" && var.studio_client_id != "" ? [google_secret_manager_secret.studio_client_secret] : []
      content {
        key        = "SEALEDSENSE_STUDIO_CLIENT_SECRET"
        project_id = data.google_project.this.number
        secret     = secret_environment_variables.value.secret_id
        version    = "latest"
      }
    }
  }

  # A build that starts before its rights have propagated fails: wait for
  # every grant the build and the deployment use, not just one.
  depends_on = [
    google_project_iam_member.builder,
    google_kms_crypto_key_iam_member.functions_agents,
    google_kms_crypto_key_iam_member.storage_agent,
    google_secret_manager_secret_iam_member.studio_reads_client_secret,
    google_project_service.api,
  ]
}
