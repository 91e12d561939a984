# Periodic work runs as HTTP calls with an OIDC token, so the functions
# stay private to each job's own identity.
locals {
  scheduled = {
    sweep           = { name = "connector-offline-sweep", schedule = "* * * * *", deadline = "60s", description = "Marks connectors that stopped sending heartbeats OFFLINE." }
    "deliver-sweep" = { name = "webhook-delivery-sweep", schedule = "* * * * *", deadline = "60s", description = "Retries due webhook deliveries; advances backfills and syncs." }
    # Hourly: each call checks both buckets' newest backup and writes a
    # new one when it is a day old, so a missed day is retried within the
    # hour and a stale bucket is reported every hour until fixed.
    backup = { name = "key-backup", schedule = "17 * * * *", deadline = "540s", description = "Backs the key registry up to both backup buckets daily; checks their age hourly." }
    # Every minute: each call takes up jobs for SEALEDSENSE_DATA_JOB_BUDGET
    # (45 s), and the deadline is the function's timeout so a page in
    # flight can finish. Jobs are leased, so calls that overlap never work
    # one job twice, and a job whose worker died is resumed by a later one.
    "data-rights" = { name = "data-rights-jobs", schedule = "* * * * *", deadline = "540s", description = "Works through data-rights jobs: exports, erasures and retention rewrites." }
  }
}

resource "google_cloud_scheduler_job" "sweep" {
  for_each = local.scheduled

  name             = each.value.name
  region           = var.region
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = each.value.deadline

  retry_config {
    retry_count = 1
  }

  http_target {
    uri         = google_cloudfunctions2_function.fn[each.key].service_config[0].uri
    http_method = "POST"

    oidc_token {
      service_account_email = google_service_account.scheduler[each.key].email
      audience              = google_cloudfunctions2_function.fn[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes, google_project_service.api]
}
