# Periodic work runs as HTTP calls with an OIDC token, so the functions
# stay private to the scheduler's identity.
locals {
  scheduled = {
    sweep           = { name = "connector-offline-sweep", description = "Marks connectors that stopped sending heartbeats OFFLINE." }
    "deliver-sweep" = { name = "webhook-delivery-sweep", description = "Retries due webhook deliveries; advances backfills and syncs." }
  }
}

resource "google_cloud_scheduler_job" "sweep" {
  for_each = local.scheduled

  name             = each.value.name
  region           = var.region
  description      = each.value.description
  schedule         = "* * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  retry_config {
    retry_count = 1
  }

  http_target {
    uri         = google_cloudfunctions2_function.fn[each.key].service_config[0].uri
    http_method = "POST"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.fn[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes]
}
