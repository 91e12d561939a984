# Periodic work runs as HTTP calls with an OIDC token, so the functions
# stay private to the scheduler's identity.
resource "google_cloud_scheduler_job" "sweep" {
  name             = "connector-offline-sweep"
  region           = var.region
  description      = "Marks connectors that stopped sending heartbeats OFFLINE."
  schedule         = "* * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  retry_config {
    retry_count = 1
  }

  http_target {
    uri         = google_cloudfunctions2_function.fn["sweep"].service_config[0].uri
    http_method = "POST"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.fn["sweep"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes]
}
