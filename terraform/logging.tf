# Logs carry device, connector and project ids, so they stay in the EU
# under our key: the _Default sink, which receives every log entry except
# the _Required audit logs, writes to a log bucket in the functions'
# region instead of the global _Default bucket. Log-based metrics count
# entries as they arrive, whatever bucket they land in.
#
# A project cannot move _Required (Admin Activity and System Event audit
# logs) or the _Default bucket itself out of `global`; in an organization
# the organization's default log settings (storage location and CMEK key,
# `gcloud logging settings update --organization=<organization_id>`, or
# google_logging_organization_settings, with roles/logging.admin at
# organization level) do that for every project created afterwards. See
# README, Logs.
resource "google_logging_project_bucket_config" "logs" {
  project        = var.project_id
  location       = var.region
  bucket_id      = "sealedsense"
  description    = "Every SealedSense log entry but the _Required audit logs, in the EU under our key."
  retention_days = var.log_retention_days

  cmek_settings {
    kms_key_name = google_kms_crypto_key.regional["logs"].id
  }

  # CMEK on a log bucket needs the Logging agent on the key first.
  depends_on = [google_kms_crypto_key_iam_member.logging_agent, google_project_service.api]
}

# _Default exists in every project: Terraform takes it over and points it
# at the bucket above, keeping its usual filter (it leaves out what the
# _Required sink already keeps). Destroying this resource leaves the sink.
resource "google_logging_project_sink" "default" {
  name        = "_Default"
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.logs.id}"
  filter = join(" AND ", [for id in [
    "cloudaudit.googleapis.com/activity",
    "externalaudit.googleapis.com/activity",
    "cloudaudit.googleapis.com/system_event",
    "externalaudit.googleapis.com/system_event",
    "cloudaudit.googleapis.com/access_transparency",
    "externalaudit.googleapis.com/access_transparency",
  ] : "NOT LOG_ID(\"${id}\")"])
}
